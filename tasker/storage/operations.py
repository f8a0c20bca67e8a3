"""Operating a stored task: retry some of its endpoints, cancel it, read its earlier runs.

Each operation is one transaction that locks the task row first, as every change of a task's
responses does (`tasker.storage.settle`); the rules come from `tasker.lifecycle`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection

from tasker.clock import utcnow
from tasker.errors import TaskNotFound
from tasker.lifecycle import (
    CANCELLED_BEFORE_START,
    RetryPlan,
    RunRow,
    check_cancel,
    plan_retry,
    seed_status,
    skipped_by_cancel,
)
from tasker.records import RunRecord, TaskRecord
from tasker.status import ErrNr, ResponseState, TaskStatus
from tasker.storage.database import Database, retry_conflicts
from tasker.storage.events import write_run_events, write_task_events
from tasker.storage.models import RESPONSE, RUN, TASK, run_record, task_record
from tasker.storage.outbox import Outgoing
from tasker.storage.settle import lock_tasks, never_ran, refresh_status

# The columns of a response that make one run: what a retry keeps in task_run.
_RUN_COLUMNS = [column.name for column in RUN.columns if column.name not in ("id", "task_id")]


@dataclasses.dataclass(frozen=True)
class Retried:
    """The task after a retry, and the run to publish (None: a repeated request, nothing new),
    claimed for publishing by the caller until `claim_until`."""

    task: TaskRecord
    outgoing: Outgoing | None
    claim_until: dt.datetime | None


class Operations:
    """Retry, cancel and earlier runs. Every method is blocking: call it from an executor."""

    def __init__(self, database: Database, claim_seconds: float) -> None:
        self.database = database
        self.claim_seconds = claim_seconds

    @retry_conflicts
    def retry(
        self, task_type: str, identifier: str, selection: str | list[str], after_run: int | None, timeout: int
    ) -> Retried:
        """Start a new run for the selected endpoints; the task is CREATED until it is published."""
        now = utcnow()
        with self.database.connection() as connection:
            task, rows = self._locked(connection, task_type, identifier)
            plan = plan_retry(rows, selection, after_run)
            if plan.repeated:
                return Retried(task, None, None)
            deadline = now + dt.timedelta(seconds=timeout)
            claim_until = now + dt.timedelta(seconds=self.claim_seconds)
            self._keep_runs(connection, task.id, plan)
            connection.execute(
                update(RESPONSE)
                .where(RESPONSE.c.task_id == task.id, RESPONSE.c.endpoint.in_(plan.endpoints))
                .values(_new_run(plan.run, now, deadline))
            )
            connection.execute(
                update(TASK)
                .where(TASK.c.id == task.id)
                .values(
                    status=TaskStatus.CREATED.value,
                    cancel_requested=None,
                    claim_until=claim_until,
                    last_modified_time=now,
                )
            )
            write_run_events(connection, [(task.id, endpoint) for endpoint in plan.endpoints], now)
            write_task_events(connection, [task.id], now)
            task = task_record(connection.execute(select(TASK).where(TASK.c.id == task.id)).one())
        return Retried(task, Outgoing(task, plan.run, plan.endpoints, deadline), claim_until)

    @retry_conflicts
    def cancel(self, task_type: str, identifier: str) -> TaskRecord:
        """Record a cancel: runs not started are `skipped` now, running ones are stopped by their
        managers; the task is CANCELLED once nothing runs. A repeated cancel changes nothing."""
        now = utcnow()
        with self.database.connection() as connection:
            task, rows = self._locked(connection, task_type, identifier)
            if not check_cancel(task.cancel_requested is not None, [row.state for row in rows.values()]):
                return task
            waiting = [endpoint for endpoint, row in rows.items() if skipped_by_cancel(row.state)]
            if waiting:
                connection.execute(
                    update(RESPONSE)
                    .where(RESPONSE.c.task_id == task.id, RESPONSE.c.endpoint.in_(waiting))
                    .where(RESPONSE.c.state.in_([ResponseState.QUEUED.value, ResponseState.RECEIVED.value]))
                    .values(never_ran(ResponseState.SKIPPED, CANCELLED_BEFORE_START, now))
                )
                write_run_events(connection, [(task.id, endpoint) for endpoint in waiting], now)
            connection.execute(update(TASK).where(TASK.c.id == task.id).values(cancel_requested=now))
            refresh_status(connection, {task.id: task.status}, now)
            return task_record(connection.execute(select(TASK).where(TASK.c.id == task.id)).one())

    def earlier_runs(self, task_id: int) -> list[RunRecord]:
        """The task's earlier runs, by endpoint and run."""
        with self.database.connection() as connection:
            query = select(RUN).where(RUN.c.task_id == task_id).order_by(RUN.c.endpoint, RUN.c.run)
            return [run_record(row) for row in connection.execute(query)]

    def _locked(self, connection: Connection, task_type: str, identifier: str) -> tuple[TaskRecord, dict[str, RunRow]]:
        found = connection.execute(
            select(TASK.c.id).where(TASK.c.type == task_type, TASK.c.identifier == identifier)
        ).scalar_one_or_none()
        if found is None:
            raise TaskNotFound("no %s task with identifier %r" % (task_type, identifier))
        lock_tasks(connection, [found], self.database.locks_rows)
        task = task_record(connection.execute(select(TASK).where(TASK.c.id == found)).one())
        query = select(RESPONSE.c.endpoint, RESPONSE.c.state, RESPONSE.c.run, RESPONSE.c.attempts, RESPONSE.c.deadline)
        rows = {
            row.endpoint: RunRow(ResponseState(row.state), row.run, row.attempts, row.deadline)
            for row in connection.execute(query.where(RESPONSE.c.task_id == found).order_by(RESPONSE.c.id))
        }
        return task, rows

    def _keep_runs(self, connection: Connection, task_id: int, plan: RetryPlan) -> None:
        columns = [RESPONSE.c[name] for name in _RUN_COLUMNS]
        current = select(RESPONSE.c.task_id, *columns).where(
            RESPONSE.c.task_id == task_id, RESPONSE.c.endpoint.in_(plan.endpoints)
        )
        connection.execute(insert(RUN).from_select(["task_id", *_RUN_COLUMNS], current))


def _new_run(run: int, now: dt.datetime, deadline: dt.datetime) -> dict:
    return {
        "run": run,
        "state": ResponseState.QUEUED.value,
        "status": seed_status(ResponseState.QUEUED),
        "errnr": ErrNr.SUCCESS.value,
        "errmsg": None,
        "payload": None,
        "attempts": 0,
        "pgid": None,
        "progress": None,
        "progress_message": None,
        "output_size": None,
        "output_tail": None,
        "start_time": now,
        "last_modified_time": now,
        "deadline": deadline,
    }
