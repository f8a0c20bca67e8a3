"""What a manager does with task-responses: register, record receipt, record the result."""

from __future__ import annotations

import enum
import json
import logging
from typing import Any

from sqlalchemy import func, select

from tasker.clock import utcnow
from tasker.errors import DuplicateRow
from tasker.status import ResponseStatus, TaskStatus
from tasker.storage.database import Database
from tasker.storage.models import EndpointRegistration, Task, TaskResponse

log = logging.getLogger(__name__)


class Receipt(str, enum.Enum):
    """What a manager should do with a task that reached it."""

    RUN = "run"  # received in time (or received before and not finished): run the handler
    FINISHED = "finished"  # this endpoint has recorded its result already: acknowledge only
    STALE = "stale"  # not received before the delivery deadline: never start it
    UNKNOWN = "unknown"  # no such task in the database


class ResponseStore:
    """Task-response rows as one manager sees them. Every method is blocking."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def register(self, task_type: str, endpoint: str) -> None:
        """Record that `endpoint` serves `task_type`, so tasks without endpoints reach it."""
        now = utcnow()
        try:
            with self.database.transaction() as session:
                row = session.get(EndpointRegistration, (task_type, endpoint))
                if row is None:
                    session.add(
                        EndpointRegistration(type=task_type, endpoint=endpoint, registered_time=now, last_seen_time=now)
                    )
                else:
                    row.last_seen_time = now
        except DuplicateRow:
            log.debug("endpoint %s registered for %s concurrently", endpoint, task_type)

    def record_receipt(self, task_id: int, endpoint: str) -> tuple[Receipt, int]:
        """Create (or count another attempt on) this endpoint's response; say what to do next.

        The task row is locked first, so the decision and the deadline check of the API
        (`TaskStore.expire_overdue`) see each other: a receipt either lands before the
        deadline was checked, or the task is stale.
        """
        now = utcnow()
        with self.database.transaction() as session:
            task = session.get(Task, task_id, with_for_update=self.database.locks_rows)
            if task is None:
                return Receipt.UNKNOWN, 0
            response = self._response(session, task_id, endpoint)
            if response is None:
                if task.receipt_checked or now > task.deadline:
                    return Receipt.STALE, 0
                session.add(
                    TaskResponse(
                        task_id=task_id,
                        endpoint=endpoint,
                        status=ResponseStatus.CREATED.value,
                        errnr=0,
                        attempts=1,
                        start_time=now,
                        last_modified_time=now,
                    )
                )
                return Receipt.RUN, 1
            if response.status == ResponseStatus.FINISHED.value:
                return Receipt.FINISHED, response.attempts
            response.attempts += 1
            response.last_modified_time = now
            return Receipt.RUN, response.attempts

    def record_result(self, task_id: int, endpoint: str, errnr: int, errmsg: str | None, payload: Any) -> str:
        """Finish this endpoint's response; mark the task DONE when every endpoint has finished.

        Returns the task's status afterwards.
        """
        now = utcnow()
        with self.database.transaction() as session:
            task = session.get(Task, task_id, with_for_update=self.database.locks_rows)
            response = self._response(session, task_id, endpoint)
            response.status = ResponseStatus.FINISHED.value
            response.errnr = errnr
            response.errmsg = errmsg
            response.payload = json.dumps(payload)
            response.last_modified_time = now
            session.flush()
            finished = session.scalar(
                select(func.count())
                .select_from(TaskResponse)
                .where(
                    TaskResponse.task_id == task_id,
                    TaskResponse.status == ResponseStatus.FINISHED.value,
                    TaskResponse.endpoint.in_(task.endpoint_list()),
                )
            )
            if finished == len(task.endpoint_list()) and task.status in _OPEN:
                task.status = TaskStatus.DONE.value
                task.receipt_checked = True
                task.claim_until = None
                task.last_modified_time = now
            return task.status

    def _response(self, session, task_id: int, endpoint: str) -> TaskResponse | None:
        return session.scalar(
            select(TaskResponse).where(TaskResponse.task_id == task_id, TaskResponse.endpoint == endpoint)
        )


_OPEN = (TaskStatus.CREATED.value, TaskStatus.SENT.value)
