"""A task's max_concurrency and max_errors, kept in the database so that they hold across hosts.

A manager about to start a run of a limited task asks `LimitStore.take_slot`: the task row is
locked, its responses read, and the lifecycle decides (`decide_start`). The slot is the run's
own row becoming `running`: a slot is free while fewer rows of the task are running than
max_concurrency allows, and it is given back when the run ends (or is delivered again after its
manager went away), or once the manager running it stopped heartbeating (`gone_runners`). Once
more runs failed than max_errors allows, the runs not started are `skipped`: at the next start
that asks, and as soon as the failure that exceeds it is recorded (`hold_back`, called by the
manager's outcome writes).
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Iterable

from sqlalchemy import bindparam, select, update
from sqlalchemy.engine import Connection

from tasker.clock import utcnow
from tasker.lifecycle import Limits, RunRow, StartVerdict, decide_start, held_back
from tasker.status import ResponseState
from tasker.storage.database import Database, retry_conflicts
from tasker.storage.events import write_run_events
from tasker.storage.models import RESPONSE, TASK, limit_value
from tasker.storage.registrations import gone_runners
from tasker.storage.settle import lock_tasks, never_ran, refresh_status

log = logging.getLogger(__name__)


class LimitStore:
    """The slots of limited tasks, as one manager takes them. Every method is blocking."""

    def __init__(self, database: Database) -> None:
        self.database = database

    @retry_conflicts
    def take_slot(self, task_id: int, endpoint: str, run: int) -> StartVerdict:
        """Whether `endpoint` may start run `run` of the task now; GO means its row is `running`
        (the slot is taken), SKIP that it is `skipped` (max_errors was exceeded)."""
        now = utcnow()
        with self.database.connection() as connection:
            before = lock_tasks(connection, [task_id], self.database.locks_rows)
            if not before:
                return StartVerdict.OVER
            limits = _limits(connection, [task_id]).get(task_id, Limits())
            rows = _rows(connection, task_id)
            gone = gone_runners(connection, task_id, endpoint, now) if limits.max_concurrency is not None else ()
            verdict = decide_start(limits, endpoint, run, rows, frozenset(gone))
            if verdict is StartVerdict.GO and rows[endpoint].state is ResponseState.RECEIVED:
                connection.execute(_TAKE, {"b_task_id": task_id, "b_endpoint": endpoint, "b_run": run, "b_now": now})
                write_run_events(connection, [(task_id, endpoint)], now)
            elif verdict is StartVerdict.SKIP:
                hold_back(connection, [task_id], now)
                refresh_status(connection, before, now)
            return verdict


def hold_back(connection: Connection, task_ids: Iterable[int], now: dt.datetime) -> None:
    """Skip the runs not started of those tasks whose failures exceed their max_errors (the task
    rows are locked by the caller)."""
    for task_id, limits in _limits(connection, task_ids).items():
        if limits.max_errors is None:
            continue
        states = {endpoint: row.state for endpoint, row in _rows(connection, task_id).items()}
        endpoints, errmsg = held_back(limits, states)
        if endpoints:
            log.info("task %s: %s; skipping %d endpoints", task_id, errmsg, len(endpoints))
            connection.execute(
                update(RESPONSE)
                .where(RESPONSE.c.task_id == task_id, RESPONSE.c.endpoint.in_(endpoints))
                .where(RESPONSE.c.state.in_([ResponseState.QUEUED.value, ResponseState.RECEIVED.value]))
                .values(never_ran(ResponseState.SKIPPED, errmsg, now))
            )
            write_run_events(connection, [(task_id, endpoint) for endpoint in endpoints], now)


def _limits(connection: Connection, task_ids: Iterable[int]) -> dict[int, Limits]:
    """The limits of those of the tasks that have any."""
    rows = connection.execute(_LIMITS, {"ids": list(task_ids)})
    return {row.id: Limits(limit_value(row.max_concurrency), limit_value(row.max_errors)) for row in rows}


def _rows(connection: Connection, task_id: int) -> dict[str, RunRow]:
    """Every response of the task, by endpoint."""
    return {
        row.endpoint: RunRow(ResponseState(row.state), row.run, row.attempts, row.deadline)
        for row in connection.execute(_RESPONSES, {"b_task_id": task_id})
    }


_LIMITS = select(TASK.c.id, TASK.c.max_concurrency, TASK.c.max_errors).where(
    TASK.c.id.in_(bindparam("ids", expanding=True)),
    (TASK.c.max_concurrency.is_not(None)) | (TASK.c.max_errors.is_not(None)),
)
_RESPONSES = select(
    RESPONSE.c.endpoint, RESPONSE.c.state, RESPONSE.c.run, RESPONSE.c.attempts, RESPONSE.c.deadline
).where(RESPONSE.c.task_id == bindparam("b_task_id"))
_TAKE = (
    update(RESPONSE)
    .where(
        RESPONSE.c.task_id == bindparam("b_task_id"),
        RESPONSE.c.endpoint == bindparam("b_endpoint"),
        RESPONSE.c.run == bindparam("b_run"),
        RESPONSE.c.state == ResponseState.RECEIVED.value,
    )
    .values(state=ResponseState.RUNNING.value, last_modified_time=bindparam("b_now"))
)
