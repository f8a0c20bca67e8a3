"""Events: each change of a task's status and of a response's run, written in the transaction
that makes the change, so that any API process can serve them and none is lost or made up.

Two kinds, as clients get them (never a payload or output):
- `task`: `type`, `identifier`, `status`, `counts`, `settled`; written when a task is created,
  when its status changes, and when it settles;
- `response`: `type`, `identifier`, `endpoint`, `run`, `state`, `errnr`, `progress`,
  `progress_message`; written when a run is queued, received, started, ended, skipped or
  missed, and when its handler reports progress.

The id of an event row orders them. Ids are taken when a row is inserted and become visible
when its transaction commits, so a reader may see id 12 before id 11 of a transaction still
open: `read_settled` reads only up to the first such gap, until the gap is older than
`SETTLE_SECONDS` (then its transaction rolled back and the id is never used).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from typing import Any, Iterable

from sqlalchemy import bindparam, insert, select
from sqlalchemy.engine import Connection

from tasker.lifecycle import count_states, is_settled
from tasker.status import ResponseState
from tasker.storage.models import EVENT, RESPONSE, TASK

SETTLE_SECONDS = 10.0
TASK_EVENT = "task"
RESPONSE_EVENT = "response"


@dataclasses.dataclass(frozen=True)
class Event:
    """One stored event: its id, when it was written, its kind, its task and its JSON."""

    id: int
    time: dt.datetime
    kind: str
    type: str
    identifier: str
    data: str


def task_event(task_type: str, identifier: str, status: str, states: list[ResponseState], now: dt.datetime) -> dict:
    """The row of a `task` event for a task in `status` whose responses are in `states`."""
    data = {
        "type": task_type,
        "identifier": identifier,
        "status": status,
        "counts": count_states(states),
        "settled": is_settled(states),
    }
    return _row(TASK_EVENT, data, now)


def write_task_events(
    connection: Connection, task_ids: Iterable[int], now: dt.datetime, status: str | None = None
) -> None:
    """Write a `task` event for each of these tasks as it is now (only those in `status`, if
    given)."""
    ids = list(task_ids)
    if not ids:
        return
    tasks: dict[int, tuple[str, str, str, list[ResponseState]]] = {}
    for row in connection.execute(_TASK_STATES, {"ids": ids}):
        entry = tasks.setdefault(row.id, (row.type, row.identifier, row.status, []))
        entry[3].append(ResponseState(row.state))
    found = [task_event(*entry, now) for _, entry in sorted(tasks.items()) if status in (None, entry[2])]
    write(connection, found)


def write_response_events(
    connection: Connection, task_ids: Iterable[int], now: dt.datetime, endpoint: str | None = None
) -> None:
    """Write a `response` event for each response of these tasks as it is now: of one endpoint
    (a manager's), or of all (None).

    The rows are read here and inserted with their number known (a multi-row INSERT), never by
    INSERT ... SELECT: InnoDB hands the ids of a statement whose row count it cannot know in
    blocks and leaves the unused ones as gaps, which readers would wait out (`read_settled`).
    """
    ids = list(task_ids)
    if not ids:
        return
    if endpoint is None:
        rows = connection.execute(_RESPONSES, {"ids": ids}).all()
    else:
        rows = connection.execute(_RESPONSES_OF_ONE, {"ids": ids, "b_endpoint": endpoint}).all()
    write(connection, [_response_row(row, now) for row in rows])


def write_run_events(connection: Connection, runs: Iterable[tuple[int, str]], now: dt.datetime) -> None:
    """Write a `response` event for each of these (task id, endpoint) responses as it is now."""
    by_endpoint: dict[str, list[int]] = {}
    for task_id, endpoint in runs:
        by_endpoint.setdefault(endpoint, []).append(task_id)
    for endpoint, task_ids in by_endpoint.items():
        write_response_events(connection, task_ids, now, endpoint)


def queued_event(task_type: str, identifier: str, endpoint: str, now: dt.datetime) -> dict:
    """The row of the `response` event of a new task's first run, queued."""
    data = {
        "type": task_type,
        "identifier": identifier,
        "endpoint": endpoint,
        "run": 1,
        "state": ResponseState.QUEUED.value,
        "errnr": 0,
        "progress": None,
        "progress_message": None,
    }
    return _row(RESPONSE_EVENT, data, now)


def write(connection: Connection, rows: list[dict]) -> None:
    """Insert event rows (from `task_event` and the writers above) in one statement."""
    if rows:
        connection.execute(insert(EVENT), rows)


def read_events(
    connection: Connection, after: int, limit: int, task_type: str | None = None, identifier: str | None = None
) -> list[Event]:
    """The events after id `after`, oldest first, of one type and identifier if given."""
    query = select(EVENT).where(EVENT.c.id > after)
    if task_type is not None:
        query = query.where(EVENT.c.type == task_type)
    if identifier is not None:
        query = query.where(EVENT.c.identifier == identifier)
    rows = connection.execute(query.order_by(EVENT.c.id).limit(limit))
    return [Event(row.id, row.time, row.kind, row.type, row.identifier, row.data) for row in rows]


def read_settled(
    connection: Connection, after: int, limit: int, now: dt.datetime, settle: float = SETTLE_SECONDS
) -> tuple[list[Event], int]:
    """The events after id `after` that no open transaction can come before any more (at most
    `limit`), oldest first, and the id to read after next time."""
    upto, _ = settled_upto(connection, after, limit, now, settle)
    if upto == after:
        return [], after
    found = connection.execute(select(EVENT).where(EVENT.c.id > after, EVENT.c.id <= upto).order_by(EVENT.c.id))
    return [Event(row.id, row.time, row.kind, row.type, row.identifier, row.data) for row in found], upto


def settled_upto(
    connection: Connection, after: int, limit: int, now: dt.datetime, settle: float = SETTLE_SECONDS
) -> tuple[int, int]:
    """How far `read_settled` would read (the id to read after next time), without reading the
    events themselves; and how many ids it looked at (`limit`: there may be more)."""
    rows = connection.execute(_IDS_AFTER, {"b_after": after, "b_limit": limit}).all()
    upto, expected, young = after, after + 1, now - dt.timedelta(seconds=settle)
    for event_id, time in rows:
        if event_id != expected and time > young:
            break  # an id before this one may still be committed
        upto, expected = event_id, event_id + 1
    return upto, len(rows)


def _response_row(row: Any, now: dt.datetime) -> dict:
    data = {
        "type": row.type,
        "identifier": row.identifier,
        **{name: row[index + 2] for index, name in enumerate(_RESPONSE_KEYS)},
    }
    return _row(RESPONSE_EVENT, data, now)


def _row(kind: str, data: dict, now: dt.datetime) -> dict:
    return {
        "time": now,
        "kind": kind,
        "type": data["type"],
        "identifier": data["identifier"],
        "data": json.dumps(data, separators=(",", ":")),
    }


_IDS = bindparam("ids", expanding=True)
_RESPONSE_KEYS = ("endpoint", "run", "state", "errnr", "progress", "progress_message")
_IDS_AFTER = (
    select(EVENT.c.id, EVENT.c.time)
    .where(EVENT.c.id > bindparam("b_after"))
    .order_by(EVENT.c.id)
    .limit(bindparam("b_limit"))
)
_TASK_STATES = (
    select(TASK.c.id, TASK.c.type, TASK.c.identifier, TASK.c.status, RESPONSE.c.state)
    .join(RESPONSE, RESPONSE.c.task_id == TASK.c.id)
    .where(TASK.c.id.in_(_IDS))
    .order_by(TASK.c.id, RESPONSE.c.id)
)
_RESPONSES = (
    select(TASK.c.type, TASK.c.identifier, *(RESPONSE.c[name] for name in _RESPONSE_KEYS))
    .join(TASK, TASK.c.id == RESPONSE.c.task_id)
    .where(RESPONSE.c.task_id.in_(_IDS))
    .order_by(RESPONSE.c.task_id, RESPONSE.c.id)
)
_RESPONSES_OF_ONE = _RESPONSES.where(RESPONSE.c.endpoint == bindparam("b_endpoint"))
