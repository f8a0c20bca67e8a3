"""What the API does with tasks: create, read, the delivery deadline; the publish bookkeeping
is the outbox's (`tasker.storage.outbox`)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection

from tasker.clock import utcnow
from tasker.errors import DuplicateRow, InvalidTask, StorageError, TaskConflict, TaskerError, TaskNotFound
from tasker.lifecycle import MISSING_ERRMSG, seed_status
from tasker.records import NewTask, TaskRecord
from tasker.status import ErrNr, ResponseState, TaskStatus
from tasker.storage import events, outbox
from tasker.storage.database import Database, retry_conflicts
from tasker.storage.models import REGISTRATION, RESPONSE, TASK, limit_text, task_record
from tasker.storage.outbox import CLAIM_SECONDS, Claim
from tasker.storage.reads import Read, read_tasks
from tasker.storage.settle import lock_tasks, never_ran, refresh_status

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Created:
    """The stored task and whether this call created it (False: a safe retry); a created task
    is claimed for publishing by the caller until `claim_until`."""

    task: TaskRecord
    created: bool
    claim_until: dt.datetime | None = None


@dataclasses.dataclass(frozen=True)
class Missed:
    """A task that became INCOMPLETE, and the endpoints that missed their delivery deadline."""

    task: TaskRecord
    endpoints: list[str]


class TaskStore:
    """Task rows as the API sees them. Every method is blocking: call it from an executor."""

    def __init__(self, database: Database, claim_seconds: float = CLAIM_SECONDS, max_endpoints: int = 1000) -> None:
        self.database = database
        self.claim_seconds = claim_seconds
        self.max_endpoints = max_endpoints

    def create(self, new: NewTask, timeout: int) -> Created:
        """Store a task as CREATED, claimed for publishing by the caller; or find its safe retry."""
        result = self.create_many([new], timeout)[0]
        if isinstance(result, Exception):
            raise result
        return result

    @retry_conflicts
    def create_many(self, news: list[NewTask], timeout: int) -> list[Created | TaskerError]:
        """Create many tasks, each with a queued response per endpoint, in one transaction when
        all are new; otherwise each alone. For each, what `create` returns or raises."""
        if len({(new.type, new.identifier) for new in news}) == len(news):
            try:  # the usual case, all of them new: one INSERT for the tasks, one for the responses
                with self.database.connection() as connection:
                    return self._insert(connection, news, timeout)
            except (StorageError, InvalidTask):
                pass  # a retry or a clash among them, one the database refuses, one with nobody to go to
        return [self._create_alone(new, timeout) for new in news]

    def _create_alone(self, new: NewTask, timeout: int) -> Created | TaskerError:
        try:
            return self._create_or_find(new, timeout)
        except DuplicateRow:  # another process stored it meanwhile: it exists now
            try:
                return self._create_or_find(new, timeout)
            except TaskerError as exc:
                return exc
        except TaskerError as exc:
            return exc

    def _create_or_find(self, new: NewTask, timeout: int) -> Created:
        with self.database.connection() as connection:
            row = connection.execute(
                select(TASK).where(TASK.c.type == new.type, TASK.c.identifier == new.identifier)
            ).first()
            if row is not None:
                if not _same_content(row, new):
                    raise _conflict(new)
                return Created(task_record(row), False)
            return self._insert(connection, [new], timeout)[0]

    def _insert(self, connection: Connection, news: list[NewTask], timeout: int) -> list[Created]:
        """Insert tasks none of which exists, with their responses; InvalidTask when one has
        nobody to go to, or would go to more registered endpoints than a task may name."""
        registered: dict[str, list[str]] = {}
        now = utcnow()
        deadline = now + dt.timedelta(seconds=timeout)
        claim_until = now + dt.timedelta(seconds=self.claim_seconds)
        rows = []
        for new in news:
            if new.endpoints is None and new.type not in registered:
                registered[new.type] = self._registered(connection, new.type)
            endpoints = new.endpoints or registered[new.type]
            if not endpoints:
                raise _nobody_registered(new.type)
            if new.endpoints is None and len(endpoints) > self.max_endpoints:
                raise InvalidTask(
                    "%d endpoints are registered for %s, more than a task may go to (api.max_endpoints %d): "
                    "name the endpoints" % (len(endpoints), new.type, self.max_endpoints)
                )
            rows.append(
                {
                    "identifier": new.identifier,
                    "type": new.type,
                    "payload": new.payload.text,
                    "endpoints": json.dumps(endpoints),
                    "status": TaskStatus.CREATED.value,
                    "start_time": now,
                    "last_modified_time": now,
                    "deadline": deadline,
                    "claim_until": claim_until,
                    "timeout": new.timeout,
                    "max_concurrency": limit_text(new.max_concurrency),
                    "max_errors": limit_text(new.max_errors),
                }
            )
        ids = _insert_returning_ids(connection, rows)
        responses = [
            _queued_response(task_id, endpoint, now, deadline)
            for row, task_id in zip(rows, ids, strict=True)
            for endpoint in json.loads(row["endpoints"])
        ]
        connection.execute(insert(RESPONSE), responses)
        events.write(connection, [event for row in rows for event in _created_events(row, now)])
        records = [task_record(_Row(row, id=task_id)) for row, task_id in zip(rows, ids, strict=True)]
        return [Created(record, True, claim_until) for record in records]

    def _registered(self, connection: Connection, task_type: str) -> list[str]:
        query = select(REGISTRATION.c.endpoint).where(REGISTRATION.c.type == task_type)
        return list(connection.execute(query.order_by(REGISTRATION.c.endpoint)).scalars())

    def get(self, task_type: str, identifier: str) -> Read:
        """The task and every endpoint's response, in the order of the task's endpoints."""
        found = self.get_many([(task_type, identifier)])[0]
        if isinstance(found, TaskNotFound):
            raise found
        return found

    def get_many(self, keys: list[tuple[str, str]]) -> list[Read | TaskNotFound]:
        """For each (type, identifier): the task and its responses, or TaskNotFound; one read of
        one snapshot, so a task's status always agrees with its responses' states."""
        with self.database.snapshot() as connection:
            return read_tasks(connection, keys)

    def mark_sent(self, task_ids: list[int]) -> None:
        """The broker confirmed these tasks: see `outbox.mark_sent`."""
        outbox.mark_sent(self.database, task_ids)

    def release(self, task_ids: list[int], claim_until: dt.datetime) -> None:
        """Give up our claim on tasks not published: see `outbox.release`."""
        outbox.release(self.database, task_ids, claim_until)

    def claim_unsent(self, limit: int = 100) -> Claim:
        """Claim CREATED tasks that nobody is publishing: see `outbox.claim_unsent`."""
        return outbox.claim_unsent(self.database, self.claim_seconds, limit)

    @retry_conflicts
    def expire_overdue(self, limit: int = 500) -> list[Missed]:
        """Mark `missing` every run still queued past its delivery deadline, and its task
        INCOMPLETE; return the tasks that changed, with the endpoints that missed."""
        now = utcnow()
        with self.database.connection() as connection:
            due = connection.execute(
                select(RESPONSE.c.task_id)
                .where(RESPONSE.c.state == ResponseState.QUEUED.value, RESPONSE.c.deadline < now)
                .order_by(RESPONSE.c.deadline)
                .limit(limit)
            ).scalars()
            task_ids = set(due)
            if not task_ids:
                return []
            before = lock_tasks(connection, task_ids, self.database.locks_rows)
            overdue = (RESPONSE.c.state == ResponseState.QUEUED.value) & (RESPONSE.c.deadline < now)
            missed = connection.execute(
                select(RESPONSE.c.task_id, RESPONSE.c.endpoint).where(RESPONSE.c.task_id.in_(task_ids), overdue)
            ).all()
            connection.execute(
                update(RESPONSE)
                .where(RESPONSE.c.task_id.in_(task_ids), overdue)
                .values(never_ran(ResponseState.MISSING, MISSING_ERRMSG, now))
            )
            events.write_run_events(connection, missed, now)
            after = refresh_status(connection, before, now)
            changed = [task_id for task_id in after if after[task_id] is not before[task_id]]
            if not changed:
                return []
            rows = connection.execute(select(TASK).where(TASK.c.id.in_(changed)).order_by(TASK.c.id))
            records = [task_record(row) for row in rows]
        by_task: dict[int, list[str]] = {}
        for task_id, endpoint in missed:
            by_task.setdefault(task_id, []).append(endpoint)
        return [Missed(record, sorted(by_task.get(record.id, []))) for record in records]


class _Row:
    """A dict of column values read as a row (attribute access), with overrides."""

    def __init__(self, values: dict[str, Any], **more: Any) -> None:
        self.__dict__.update(values, **more)


def _insert_returning_ids(connection: Connection, rows: list[dict[str, Any]]) -> list[int]:
    if connection.dialect.insert_executemany_returning_sort_by_parameter_order:  # MariaDB, SQLite
        statement = insert(TASK).returning(TASK.c.id, sort_by_parameter_order=True)
        return list(connection.execute(statement, rows).scalars())
    # MySQL has no INSERT ... RETURNING: one statement a row
    return [connection.execute(insert(TASK).values(row)).inserted_primary_key[0] for row in rows]


def _queued_response(task_id: int, endpoint: str, now: dt.datetime, deadline: dt.datetime) -> dict[str, Any]:
    return {
        "task_id": task_id,
        "endpoint": endpoint,
        "state": ResponseState.QUEUED.value,
        "status": seed_status(ResponseState.QUEUED),
        "run": 1,
        "attempts": 0,
        "errnr": ErrNr.SUCCESS.value,
        "errmsg": None,
        "payload": None,
        "start_time": now,
        "last_modified_time": now,
        "deadline": deadline,
        "pgid": None,
    }


def _created_events(row: dict[str, Any], now: dt.datetime) -> list[dict[str, Any]]:
    """The events of a new task, built here rather than read back: CREATED, and a queued run
    for each endpoint."""
    endpoints, queued = json.loads(row["endpoints"]), ResponseState.QUEUED
    task_type, identifier = row["type"], row["identifier"]
    created = events.task_event(task_type, identifier, row["status"], [queued] * len(endpoints), now)
    return [created, *(events.queued_event(task_type, identifier, endpoint, now) for endpoint in endpoints)]


def _same_content(row: Any, new: NewTask) -> bool:
    """Whether a POST repeats the stored task: same payload, same endpoints in any order (or
    none given), same limits."""
    same_endpoints = new.endpoints is None or sorted(new.endpoints) == sorted(json.loads(row.endpoints))
    same_limits = (row.timeout, row.max_concurrency, row.max_errors) == (
        new.timeout,
        limit_text(new.max_concurrency),
        limit_text(new.max_errors),
    )
    return row.payload == new.payload.text and same_endpoints and same_limits


def _conflict(new: NewTask) -> TaskConflict:
    return TaskConflict("a %s task with identifier %r exists already with other content" % (new.type, new.identifier))


def _nobody_registered(task_type: str) -> InvalidTask:
    return InvalidTask(
        "no endpoint is registered for task type %r: name the endpoints, or start its managers first" % task_type
    )
