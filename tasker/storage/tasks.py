"""What the API does with tasks: create, read, publish bookkeeping, the delivery deadline."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
from typing import Any

from sqlalchemy import insert, select, tuple_, update
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from tasker.clock import utcnow
from tasker.errors import DuplicateRow, InvalidTask, StorageError, TaskConflict, TaskerError, TaskNotFound
from tasker.status import TaskStatus
from tasker.storage.database import Database, retry_conflicts
from tasker.storage.models import EndpointRegistration, Task, TaskResponse, task_view

log = logging.getLogger(__name__)
# How long an API process holds a task it is publishing: above the publisher's confirm timeout,
# well below any sensible delivery deadline, so the outbox of another API takes over in time.
CLAIM_SECONDS = 15.0


@dataclasses.dataclass(frozen=True)
class NewTask:
    """A validated request to create a task; `endpoints` None means every registered endpoint."""

    type: str
    identifier: str
    payload: Any
    endpoints: list[str] | None


@dataclasses.dataclass(frozen=True)
class Created:
    """The stored task and whether this call created it (False: a safe retry)."""

    task: dict[str, Any]
    created: bool


class TaskStore:
    """Task rows as the API sees them. Every method is blocking: call it from an executor."""

    def __init__(self, database: Database, claim_seconds: float = CLAIM_SECONDS) -> None:
        self.database = database
        self.claim_seconds = claim_seconds

    def create(self, new: NewTask, timeout: int) -> Created:
        """Store a task as CREATED, claimed for publishing by the caller; or find its safe retry."""
        result = self.create_many([new], timeout)[0]
        if isinstance(result, Exception):
            raise result
        return result

    @retry_conflicts
    def create_many(self, news: list[NewTask], timeout: int) -> list[Created | TaskerError]:
        """Create many tasks in one transaction; for each, what `create` returns or raises."""
        keys = {(new.type, new.identifier) for new in news}
        if len(keys) == len(news):
            try:  # the usual case, all of them new: one INSERT for the lot
                with self.database.connection() as connection:
                    inserted = self._insert_new(connection, news, timeout)
                if inserted is not None:
                    return inserted
            except StorageError:
                pass  # a retry or a clash among them, or one the database refuses: look at each
        try:
            with self.database.transaction() as session:
                return self._create_batch(session, news, timeout)
        except DuplicateRow:  # another process stored one of them meanwhile: it exists now
            if len(news) == 1:
                with self.database.transaction() as session:
                    return self._create_batch(session, news, timeout)
            return [self._alone(new, timeout) for new in news]
        except StorageError:
            if len(news) == 1:
                raise
            # One of them cannot be stored (too large for the database, say): it alone fails.
            return [self._alone(new, timeout) for new in news]

    def _alone(self, new: NewTask, timeout: int) -> Created | TaskerError:
        try:
            return self.create_many([new], timeout)[0]
        except TaskerError as exc:
            return exc

    def _insert_new(self, connection: Connection, news: list[NewTask], timeout: int) -> list[Created] | None:
        """Insert tasks none of which exists; None when one has nobody to go to."""
        registered: dict[str, list[str]] = {}
        now = utcnow()
        rows = []
        for new in news:
            if new.endpoints is None and new.type not in registered:
                registered[new.type] = self._registered(connection, new.type)
            endpoints = new.endpoints or registered[new.type]
            if not endpoints:
                return None
            rows.append(self._new_values(new, json.dumps(new.payload, sort_keys=True), endpoints, timeout, now))
        table = Task.__table__
        if connection.dialect.insert_executemany_returning_sort_by_parameter_order:  # MariaDB, SQLite
            statement = insert(table).returning(table.c.id, sort_by_parameter_order=True)
            ids = connection.execute(statement, rows).scalars()
        else:  # MySQL has no INSERT ... RETURNING: one statement a row
            ids = [connection.execute(insert(table).values(row)).inserted_primary_key[0] for row in rows]
        return [Created(task_view(dict(row, id=task_id)), True) for row, task_id in zip(rows, ids, strict=True)]

    def _create_batch(self, session: Session, news: list[NewTask], timeout: int) -> list[Created | TaskerError]:
        keys = {(new.type, new.identifier) for new in news}
        known = {
            (task.type, task.identifier): task
            for task in session.scalars(select(Task).where(tuple_(Task.type, Task.identifier).in_(keys)))
        }
        registered: dict[str, list[str]] = {}
        now = utcnow()
        outcomes: list[tuple[Task, bool] | TaskerError] = []
        for new in news:
            payload = json.dumps(new.payload, sort_keys=True)
            task = known.get((new.type, new.identifier))
            if task is not None:
                outcomes.append((task, False) if _same_content(task, new, payload) else _conflict(new))
                continue
            if new.endpoints is None and new.type not in registered:
                registered[new.type] = self._registered(session, new.type)
            endpoints = new.endpoints or registered[new.type]
            if not endpoints:
                outcomes.append(_nobody_registered(new.type))
                continue
            task = self._new_row(new, payload, endpoints, timeout, now)
            session.add(task)
            known[(new.type, new.identifier)] = task
            outcomes.append((task, True))
        session.flush()
        return [o if isinstance(o, TaskerError) else Created(o[0].to_dict(), o[1]) for o in outcomes]

    def _new_row(self, new: NewTask, payload: str, endpoints: list[str], timeout: int, now: dt.datetime) -> Task:
        return Task(**self._new_values(new, payload, endpoints, timeout, now))

    def _new_values(
        self, new: NewTask, payload: str, endpoints: list[str], timeout: int, now: dt.datetime
    ) -> dict[str, Any]:
        return {
            "identifier": new.identifier,
            "type": new.type,
            "payload": payload,
            "endpoints": json.dumps(endpoints),
            "status": TaskStatus.CREATED.value,
            "start_time": now,
            "last_modified_time": now,
            "deadline": now + dt.timedelta(seconds=timeout),
            "receipt_checked": False,
            "claim_until": now + dt.timedelta(seconds=self.claim_seconds),
        }

    def _registered(self, session: Session | Connection, task_type: str) -> list[str]:
        rows = session.execute(
            select(EndpointRegistration.endpoint)
            .where(EndpointRegistration.type == task_type)
            .order_by(EndpointRegistration.endpoint)
        ).scalars()
        return list(rows)

    def get(self, task_type: str, identifier: str) -> dict[str, Any]:
        """The task and every endpoint's response, as `GET /<type>/<identifier>` answers."""
        with self.database.transaction() as session:
            task = self._find(session, task_type, identifier)
            responses = session.scalars(
                select(TaskResponse).where(TaskResponse.task_id == task.id).order_by(TaskResponse.id)
            )
            return {"task": task.to_dict(), "taskResponseList": [r.to_dict() for r in responses]}

    def _find(self, session: Session, task_type: str, identifier: str) -> Task:
        task = session.scalar(select(Task).where(Task.type == task_type, Task.identifier == identifier))
        if task is None:
            raise TaskNotFound("no %s task with identifier %r" % (task_type, identifier))
        return task

    @retry_conflicts
    def mark_sent(self, task_ids: list[int]) -> None:
        """Record that the broker confirmed these tasks (those still CREATED become SENT)."""
        with self.database.connection() as connection:
            connection.execute(
                update(Task)
                .where(Task.id.in_(task_ids), Task.status == TaskStatus.CREATED.value)
                .values(status=TaskStatus.SENT.value, claim_until=None, last_modified_time=utcnow())
            )

    @retry_conflicts
    def release(self, task_ids: list[int]) -> None:
        """Give up the claim on tasks that could not be published, so the outbox retries them now."""
        with self.database.transaction() as session:
            session.execute(update(Task).where(Task.id.in_(task_ids)).values(claim_until=None))

    def claim_unsent(self, limit: int = 100) -> list[dict[str, Any]]:
        """Claim CREATED tasks that nobody is publishing; only one API process wins each."""
        now = utcnow()
        with self.database.transaction() as session:
            candidates = session.execute(
                select(Task.id, Task.claim_until)
                .where(Task.status == TaskStatus.CREATED.value, Task.deadline > now)
                .where((Task.claim_until.is_(None)) | (Task.claim_until < now))
                .order_by(Task.id)
                .limit(limit)
            ).all()
        claimed = []
        for task_id, claim_until in candidates:
            with self.database.transaction() as session:
                won = session.execute(
                    update(Task)
                    .where(Task.id == task_id, Task.status == TaskStatus.CREATED.value)
                    .where(_same_claim(claim_until))
                    .values(claim_until=now + dt.timedelta(seconds=self.claim_seconds))
                ).rowcount
                if won:
                    claimed.append(session.get(Task, task_id).to_dict())
        return claimed

    @retry_conflicts
    def expire_overdue(self, limit: int = 500) -> list[dict[str, Any]]:
        """Check every task past its deadline once; mark INCOMPLETE those an endpoint missed."""
        now = utcnow()
        with self.database.transaction() as session:
            due = list(
                session.scalars(
                    select(Task.id)
                    .where(Task.receipt_checked.is_(False), Task.deadline < now)
                    .order_by(Task.deadline)
                    .limit(limit)
                )
            )
        expired = []
        for task_id in due:
            with self.database.transaction() as session:
                task = session.get(Task, task_id, with_for_update=self.database.locks_rows)
                if task is None or task.receipt_checked:
                    continue
                received = set(session.scalars(select(TaskResponse.endpoint).where(TaskResponse.task_id == task_id)))
                missing = [e for e in task.endpoint_list() if e not in received]
                task.receipt_checked = True
                if missing and task.status != TaskStatus.DONE.value:
                    task.status = TaskStatus.INCOMPLETE.value
                    task.last_modified_time = now
                    expired.append(dict(task.to_dict(), missing=missing))
        return expired


def _same_content(task: Task, new: NewTask, payload: str) -> bool:
    """Whether a POST repeats the stored task: same payload, same endpoints in any order (or none given)."""
    same_endpoints = new.endpoints is None or sorted(new.endpoints) == sorted(task.endpoint_list())
    return task.payload == payload and same_endpoints


def _conflict(new: NewTask) -> TaskConflict:
    return TaskConflict("a %s task with identifier %r exists already with other content" % (new.type, new.identifier))


def _nobody_registered(task_type: str) -> InvalidTask:
    return InvalidTask(
        "no endpoint is registered for task type %r: name the endpoints, or start its managers first" % task_type
    )


def _same_claim(claim_until: dt.datetime | None) -> Any:
    return Task.claim_until.is_(None) if claim_until is None else Task.claim_until == claim_until
