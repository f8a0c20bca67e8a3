"""The history of a task type: one page of its tasks, newest first, filtered, without payloads.

Tasks are ordered by (start_time, id), newest first; a page goes on from a position in that
order (the cursor), never from an OFFSET, so tasks that arrive meanwhile never shift it. What a
page reads is bounded, whatever the table holds:

- Filters on the task row alone (status, since, until) are one range of an index in that
  order (`ix_task_type_status_start` with a status, else `ix_task_type_start`): a page reads
  `limit` entries.
- The other filters (an identifier prefix, an endpoint, a response state) match few tasks or
  many. When few rows can match (under FEW, counted on an index), those are read and sorted.
  When many can, the range is read in order and each task checked, but no further than WINDOW
  tasks: a page may then hold fewer than `limit` tasks, and its `next` position says where the
  next page goes on.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from typing import Any

from sqlalchemy import ColumnElement, Select, Table, and_, bindparam, func, literal_column, or_, select
from sqlalchemy.engine import Connection

from tasker.jsontext import JsonText
from tasker.records import TaskRecord
from tasker.status import ResponseState, TaskStatus
from tasker.storage.database import Database
from tasker.storage.models import RESPONSE, TASK, limit_value

# Candidate rows counted before they are read and sorted; more, and the range is read in order.
FEW = 5000
# Tasks of the range checked for one page at most, when a filter is on more than the task row.
WINDOW = 3000

# (start_time, id) of a task: where a page goes on from, exclusive.
Position = tuple[dt.datetime, int]
# The task's columns but its payload (which may be megabytes) and the outbox's claim.
_LISTED = [column for column in TASK.columns if column.name not in ("payload", "claim_until")]
_NEWEST_FIRST = (TASK.c.start_time.desc(), TASK.c.id.desc())
# The states of a page's responses. Through the task_id index by name: with hundreds of ids,
# MariaDB estimates from statistics alone, and when they are off it reads the whole table.
_STATES = (
    select(RESPONSE.c.task_id, RESPONSE.c.state, func.count())
    .where(RESPONSE.c.task_id.in_(bindparam("ids", expanding=True)))
    .group_by(RESPONSE.c.task_id, RESPONSE.c.state)
    .with_hint(RESPONSE, "FORCE INDEX (uq_task_response_endpoint)", dialect_name="mysql")
    .with_hint(RESPONSE, "FORCE INDEX (uq_task_response_endpoint)", dialect_name="mariadb")
)
# A placeholder for what the history never reads: it shows no payload.
_NO_PAYLOAD = JsonText("null")


@dataclasses.dataclass(frozen=True)
class HistoryQuery:
    """What `GET /<type>` asks for: a type's tasks, filtered, `limit` of them after `after`."""

    type: str
    status: TaskStatus | None = None
    endpoint: str | None = None  # tasks naming it
    state: ResponseState | None = None  # tasks with a response in that state (of `endpoint`, if given)
    since: dt.datetime | None = None  # start_time at or after
    until: dt.datetime | None = None  # start_time at or before
    identifier: str | None = None  # a prefix, taken literally
    limit: int = 50
    after: Position | None = None


@dataclasses.dataclass(frozen=True)
class Listed:
    """A task as the history lists it (its payload not read) and the states of its responses."""

    task: TaskRecord
    states: list[ResponseState]


@dataclasses.dataclass(frozen=True)
class HistoryPage:
    """The tasks of one page, newest first, and where the next page goes on (None: no more)."""

    tasks: list[Listed]
    next: Position | None


class HistoryStore:
    """Pages of the history. Every method is blocking: call it from an executor."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def page(self, query: HistoryQuery) -> HistoryPage:
        """One page of the tasks `query` asks for."""
        with self.database.connection() as connection:
            rows, more = _page_rows(connection, query)
            states = _states(connection, [row.id for row in rows])
        tasks = [Listed(_listed_record(row), states.get(row.id, [])) for row in rows]
        return HistoryPage(tasks, more)


def _page_rows(connection: Connection, query: HistoryQuery) -> tuple[list[Any], Position | None]:
    """The page's rows and the position the next page goes on from."""
    ranged = _range_conditions(query)
    checked = _checks(query)
    driving = "ix_task_type_status_start" if query.status is not None else "ix_task_type_start"
    if not checked:
        return _limited(connection, _listing(driving, ranged), query.limit)
    few = _few(connection, query)
    if few is not None:
        index, conditions = few
        return _limited(connection, _listing(index, ranged + conditions), query.limit)
    boundary = _boundary(connection, driving, ranged)
    if boundary is not None:  # the window's last task: the page reads no further
        ranged.append(_at_or_after(boundary))
    rows, more = _limited(connection, _listing(driving, ranged + checked), query.limit)
    return rows, more if more is not None else boundary


def _limited(connection: Connection, statement: Select, limit: int) -> tuple[list[Any], Position | None]:
    """The first `limit` rows and, if there are more, the position of the last one shown."""
    rows = connection.execute(statement.limit(limit + 1)).all()
    if len(rows) <= limit:
        return rows, None
    return rows[:limit], (rows[limit - 1].start_time, rows[limit - 1].id)


def _listing(index: str, conditions: list[ColumnElement[bool]]) -> Select:
    """The tasks meeting `conditions`, newest first, read through `index`."""
    return _through(select(*_LISTED).where(*conditions).order_by(*_NEWEST_FIRST), TASK, index)


def _through(statement: Select, table: Table, index: str) -> Select:
    """The statement reading `table` through `index` on MariaDB, whose optimizer, left to
    itself, may read a type's whole range backwards for an `until`, or a whole table when its
    statistics are off."""
    for dialect in ("mysql", "mariadb"):
        statement = statement.with_hint(table, "FORCE INDEX (%s)" % index, dialect_name=dialect)
    return statement


def _range_conditions(query: HistoryQuery) -> list[ColumnElement[bool]]:
    """The filters an index in (start_time, id) order reads as one range."""
    conditions = [TASK.c.type == query.type]
    if query.status is not None:
        conditions.append(TASK.c.status == query.status.value)
    if query.since is not None:
        conditions.append(TASK.c.start_time >= query.since)
    if query.until is not None:
        conditions.append(TASK.c.start_time <= query.until)
    if query.after is not None:
        start_time, task_id = query.after
        conditions.append(
            or_(TASK.c.start_time < start_time, and_(TASK.c.start_time == start_time, TASK.c.id < task_id))
        )
    return conditions


def _at_or_after(position: Position) -> ColumnElement[bool]:
    start_time, task_id = position
    return or_(TASK.c.start_time > start_time, and_(TASK.c.start_time == start_time, TASK.c.id >= task_id))


def _checks(query: HistoryQuery) -> list[ColumnElement[bool]]:
    """The filters checked task by task when the range is read in order."""
    checks = []
    if query.identifier is not None:
        checks.append(_prefixed(query.identifier))
    if query.endpoint is not None or query.state is not None:
        # A correlated scalar subquery, not EXISTS: MariaDB may turn an EXISTS into a semi-join
        # that first reads every response in that state (thousands of rows, each looked up for
        # its task_id); this reads one task's responses at a time, in the window only.
        conditions = (condition for condition, _ in _response_conditions(query))
        probe = select(literal_column("1")).where(RESPONSE.c.task_id == TASK.c.id, *conditions).limit(1)
        probe = _through(probe, RESPONSE, "uq_task_response_endpoint")  # by task_id, not by state
        checks.append(probe.scalar_subquery().is_not(None))
    return checks


def _prefixed(prefix: str) -> ColumnElement[bool]:
    """Identifiers starting with `prefix`, literally: a range rather than LIKE, so that no `_`
    or `%` is a wildcard, and byte for byte on SQLite too (whose LIKE ignores case)."""
    following = prefix[:-1] + chr(ord(prefix[-1]) + 1)
    return and_(TASK.c.identifier >= prefix, TASK.c.identifier < following)


def _response_conditions(query: HistoryQuery) -> list[tuple[ColumnElement[bool], str]]:
    """What a response of a listed task must be, each with the index that finds it: the state
    first, as it is rarer than an endpoint."""
    conditions = []
    if query.state is not None:
        conditions.append((RESPONSE.c.state == query.state.value, "ix_task_response_state_deadline"))
    if query.endpoint is not None:
        conditions.append((RESPONSE.c.endpoint == query.endpoint, "ix_task_response_endpoint"))
    return conditions


def _few(connection: Connection, query: HistoryQuery) -> tuple[str, list[ColumnElement[bool]]] | None:
    """When a filter matches fewer than FEW rows of an index: the index to read the tasks
    through and the conditions that select them; else None."""
    if query.identifier is not None:
        prefixed = select(TASK.c.id).where(TASK.c.type == query.type, _prefixed(query.identifier))
        if _fewer_than_few(connection, _through(prefixed, TASK, "uq_task_type_identifier")):
            return "uq_task_type_identifier", _checks(query)
    for condition, index in _response_conditions(query):
        candidates = select(literal_column("1")).select_from(RESPONSE).where(condition)
        if _fewer_than_few(connection, _through(candidates, RESPONSE, index)):
            responses = select(RESPONSE.c.task_id).where(*(condition for condition, _ in _response_conditions(query)))
            named = TASK.c.id.in_(_through(responses, RESPONSE, index))
            prefixed = [_prefixed(query.identifier)] if query.identifier is not None else []
            return "PRIMARY", [named, *prefixed]  # each task looked up by its id
    return None


def _fewer_than_few(connection: Connection, candidates: Select) -> bool:
    """Whether `candidates` are fewer than FEW rows (count them on an index alone: select
    nothing the index lacks)."""
    counted = select(func.count()).select_from(candidates.limit(FEW).subquery())
    return connection.execute(counted).scalar_one() < FEW


def _boundary(connection: Connection, index: str, ranged: list[ColumnElement[bool]]) -> Position | None:
    """The WINDOW-th task of the range (None: the range holds fewer)."""
    statement = select(TASK.c.start_time, TASK.c.id).where(*ranged).order_by(*_NEWEST_FIRST)
    row = connection.execute(_through(statement, TASK, index).offset(WINDOW - 1).limit(1)).first()
    return None if row is None else (row.start_time, row.id)


def _states(connection: Connection, task_ids: list[int]) -> dict[int, list[ResponseState]]:
    """The states of the responses of these tasks."""
    found: dict[int, list[ResponseState]] = {}
    if task_ids:
        for task_id, state, count in connection.execute(_STATES, {"ids": task_ids}):
            found.setdefault(task_id, []).extend([ResponseState(state)] * count)
    return found


def _listed_record(row: Any) -> TaskRecord:
    return TaskRecord(
        id=row.id,
        identifier=row.identifier,
        type=row.type,
        payload=_NO_PAYLOAD,
        endpoints=tuple(json.loads(row.endpoints)),
        status=TaskStatus(row.status),
        start_time=row.start_time,
        last_modified_time=row.last_modified_time,
        deadline=row.deadline,
        cancel_requested=row.cancel_requested,
        timeout=row.timeout,
        max_concurrency=limit_value(row.max_concurrency),
        max_errors=limit_value(row.max_errors),
    )
