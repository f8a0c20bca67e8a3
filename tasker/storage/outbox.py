"""The outbox's bookkeeping: which API process publishes which unsent run of a task.

A task is CREATED until the broker confirms it. Whoever publishes it holds a claim on its row
(`claim_until`): its creator first, then, once that claim ran out or was released, the outbox
of any API process that wins the row with a compare-and-set.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.engine import Connection

from tasker.clock import utcnow
from tasker.records import TaskRecord
from tasker.status import ResponseState, TaskStatus
from tasker.storage.database import Database, retry_conflicts
from tasker.storage.events import write_task_events
from tasker.storage.models import RESPONSE, TASK, task_record

# How long an API process holds a task it is publishing: above the publisher's confirm timeout,
# well below any sensible delivery deadline, so the outbox of another API takes over in time.
CLAIM_SECONDS = 15.0


@dataclasses.dataclass(frozen=True)
class Outgoing:
    """Run `run` of a task, to be published to `endpoints` with delivery deadline `deadline`."""

    task: TaskRecord
    run: int
    endpoints: list[str]
    deadline: dt.datetime

    @classmethod
    def first(cls, task: TaskRecord) -> Outgoing:
        """Run 1 of a new task, to every endpoint."""
        return cls(task, 1, list(task.endpoints), task.deadline)


@dataclasses.dataclass(frozen=True)
class Claim:
    """Unsent runs one caller may publish until `until`; the value also names the claim, so
    that the caller releases its own claims and never one another API took over since."""

    outgoing: list[Outgoing]
    until: dt.datetime


@retry_conflicts
def mark_sent(database: Database, task_ids: list[int]) -> None:
    """Record that the broker confirmed these tasks (those still CREATED become SENT), with a
    `task` event for each that did."""
    now = utcnow()
    with database.connection() as connection:
        changed = connection.execute(
            update(TASK)
            .where(TASK.c.id.in_(task_ids), TASK.c.status == TaskStatus.CREATED.value)
            .values(status=TaskStatus.SENT.value, claim_until=None, last_modified_time=now)
        )
        if changed.rowcount:  # a task SENT already by another API's outbox may say so twice
            write_task_events(connection, task_ids, now, TaskStatus.SENT.value)


@retry_conflicts
def release(database: Database, task_ids: list[int], claim_until: dt.datetime) -> None:
    """Give up our claim (`claim_until`) on tasks not published, so the outbox retries them
    now; a task whose claim expired and was taken over by another API keeps that claim."""
    if not task_ids:
        return
    with database.connection() as connection:
        connection.execute(
            update(TASK).where(TASK.c.id.in_(task_ids), TASK.c.claim_until == claim_until).values(claim_until=None)
        )


def claim_unsent(database: Database, claim_seconds: float, limit: int) -> Claim:
    """Claim, for `claim_seconds`, CREATED tasks that nobody is publishing; only one API
    process wins each."""
    now = utcnow()
    until = now + dt.timedelta(seconds=claim_seconds)
    with database.connection() as connection:
        candidates = connection.execute(
            select(TASK.c.id, TASK.c.claim_until)
            .where(TASK.c.status == TaskStatus.CREATED.value, TASK.c.deadline > now)
            .where((TASK.c.claim_until.is_(None)) | (TASK.c.claim_until < now))
            .order_by(TASK.c.id)
            .limit(limit)
        ).all()
    claimed = []
    for task_id, claim_until in candidates:
        with database.connection() as connection:
            won = connection.execute(
                update(TASK)
                .where(TASK.c.id == task_id, TASK.c.status == TaskStatus.CREATED.value)
                .where(_same_claim(claim_until))
                .values(claim_until=until)
            ).rowcount
            if won:
                claimed.append(_unsent(connection, task_id))
    return Claim([outgoing for outgoing in claimed if outgoing.endpoints], until)


def _unsent(connection: Connection, task_id: int) -> Outgoing:
    """What a CREATED task has to publish: its latest run, to the endpoints still queued in it."""
    task = task_record(connection.execute(select(TASK).where(TASK.c.id == task_id)).one())
    rows = connection.execute(
        select(RESPONSE.c.endpoint, RESPONSE.c.run, RESPONSE.c.state, RESPONSE.c.deadline)
        .where(RESPONSE.c.task_id == task_id)
        .order_by(RESPONSE.c.id)
    ).all()
    latest = max((row.run for row in rows), default=1)
    waiting = [row for row in rows if row.run == latest and row.state == ResponseState.QUEUED.value]
    deadline = max((row.deadline for row in waiting), default=task.deadline)
    return Outgoing(task, latest, [row.endpoint for row in waiting], deadline)


def _same_claim(claim_until: dt.datetime | None) -> Any:
    return TASK.c.claim_until.is_(None) if claim_until is None else TASK.c.claim_until == claim_until
