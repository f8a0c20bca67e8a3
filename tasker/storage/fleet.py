"""What the whole fleet looks like, read from the database for `GET /metrics`: what is in flight
now, what finished in a recent window, and each endpoint's latest heartbeat.

A read never scans the history: what is in flight is found through the status and state
indexes (it is as large as the backlog, not as the table), and what finished is read for the
last `window` only, through `last_modified_time` of tasks and responses (the indexes
`ix_task_status_modified` and `ix_task_response_state_modified` make that a range of each).
Run durations are whole seconds, from the manager's receipt of a run to its outcome, as the
columns hold them; they come back counted by their value, so a window of many runs is still
a few rows.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from sqlalchemy import func, literal_column, select
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from tasker.status import OPEN_STATES, ResponseState, TaskStatus
from tasker.storage.database import Database
from tasker.storage.models import RESPONSE, TASK
from tasker.storage.registrations import Registration, RegistrationStore

IN_FLIGHT = (TaskStatus.CREATED, TaskStatus.SENT)
SETTLED = tuple(status for status in TaskStatus if status not in IN_FLIGHT)
FINAL_STATES = tuple(state for state in ResponseState if state.final)
# Final states whose handler ran: a run `skipped` or `missing` has no duration.
RAN_STATES = frozenset(
    {ResponseState.SUCCEEDED, ResponseState.FAILED, ResponseState.TIMED_OUT, ResponseState.CANCELLED}
)


@dataclasses.dataclass(frozen=True)
class Flight:
    """How many tasks (or runs) are in one status (or state), and the earliest time among them:
    tasks' start_time, runs' delivery deadline."""

    count: int
    earliest: dt.datetime | None


@dataclasses.dataclass(frozen=True)
class FleetFigures:
    """The fleet's figures at `now`; keys are (task type, status or state)."""

    now: dt.datetime
    window: float
    tasks_in_flight: dict[tuple[str, TaskStatus], Flight]
    tasks_settled: dict[tuple[str, TaskStatus], int]
    runs_open: dict[tuple[str, ResponseState], Flight]
    runs_finished: dict[tuple[str, ResponseState], int]
    # Runs that ran and finished in the window, by type: {seconds it took: how many}.
    durations: dict[str, dict[int, int]]
    endpoints: list[Registration]


def read_fleet(database: Database, now: dt.datetime, window: float) -> FleetFigures:
    """The fleet as the database shows it at `now`, with what finished in the last `window` seconds."""
    since = now - dt.timedelta(seconds=window)
    with database.connection() as connection:
        in_flight, settled = _tasks_in_flight(connection), _tasks_settled(connection, since)
        runs_open = _runs_open(connection)
        runs_finished, durations = _finished_runs(connection, since)
    return FleetFigures(
        now=now,
        window=window,
        tasks_in_flight=in_flight,
        tasks_settled=settled,
        runs_open=runs_open,
        runs_finished=runs_finished,
        durations=durations,
        endpoints=RegistrationStore(database).listing(),
    )


def _tasks_in_flight(connection: Connection) -> dict[tuple[str, TaskStatus], Flight]:
    query = (
        select(TASK.c.type, TASK.c.status, func.count(), func.min(TASK.c.start_time))
        .where(TASK.c.status.in_([status.value for status in IN_FLIGHT]))
        .group_by(TASK.c.type, TASK.c.status)
    )
    return {
        (kind, TaskStatus(status)): Flight(count, oldest) for kind, status, count, oldest in connection.execute(query)
    }


def _tasks_settled(connection: Connection, since: dt.datetime) -> dict[tuple[str, TaskStatus], int]:
    query = (
        select(TASK.c.type, TASK.c.status, func.count())
        .where(TASK.c.status.in_([status.value for status in SETTLED]), TASK.c.last_modified_time >= since)
        .group_by(TASK.c.type, TASK.c.status)
    )
    return {(kind, TaskStatus(status)): count for kind, status, count in connection.execute(query)}


def _runs_open(connection: Connection) -> dict[tuple[str, ResponseState], Flight]:
    query = (
        select(TASK.c.type, RESPONSE.c.state, func.count(), func.min(RESPONSE.c.deadline))
        .join(TASK, TASK.c.id == RESPONSE.c.task_id)
        .where(RESPONSE.c.state.in_([state.value for state in OPEN_STATES]))
        .group_by(TASK.c.type, RESPONSE.c.state)
    )
    return {
        (kind, ResponseState(state)): Flight(count, oldest) for kind, state, count, oldest in connection.execute(query)
    }


def _finished_runs(
    connection: Connection, since: dt.datetime
) -> tuple[dict[tuple[str, ResponseState], int], dict[str, dict[int, int]]]:
    seconds = _seconds_between(connection, RESPONSE.c.start_time, RESPONSE.c.last_modified_time).label("seconds")
    query = (
        select(TASK.c.type, RESPONSE.c.state, seconds, func.count())
        .join(TASK, TASK.c.id == RESPONSE.c.task_id)
        .where(
            RESPONSE.c.state.in_([state.value for state in FINAL_STATES]),
            RESPONSE.c.last_modified_time >= since,
        )
        .group_by(TASK.c.type, RESPONSE.c.state, seconds)
    )
    finished: dict[tuple[str, ResponseState], int] = {}
    durations: dict[str, dict[int, int]] = {}
    for kind, state, took, count in connection.execute(query):
        state = ResponseState(state)
        finished[(kind, state)] = finished.get((kind, state), 0) + count
        if state in RAN_STATES:
            by_seconds = durations.setdefault(kind, {})
            took = max(0, int(took or 0))
            by_seconds[took] = by_seconds.get(took, 0) + count
    return finished, durations


def _seconds_between(connection: Connection, start: ColumnElement, end: ColumnElement) -> ColumnElement:
    """Whole seconds from `start` to `end`, computed by the database."""
    if connection.dialect.name == "sqlite":
        return func.round((func.julianday(end) - func.julianday(start)) * 86400)
    return func.timestampdiff(literal_column("SECOND"), start, end)
