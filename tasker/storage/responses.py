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
        """Record receipt of one task; see `record_receipts`."""
        return self.record_receipts([task_id], endpoint)[0]

    def record_receipts(
        self, task_ids: list[int], endpoint: str, again: list[bool] | None = None
    ) -> list[tuple[Receipt, int]]:
        """Create (or count another attempt on) this endpoint's response to each task, in one
        transaction; say for each what to do next, with its attempt count. `again[i]` False:
        the message came back without having run (a renewal copy), so no attempt is counted.

        The task rows are locked first (in id order), so each decision and the deadline check
        of the API (`TaskStore.expire_overdue`) see each other: a receipt either lands before
        the deadline was checked, or the task is stale.
        """
        now = utcnow()
        with self.database.transaction() as session:
            query = select(Task).where(Task.id.in_(set(task_ids))).order_by(Task.id)
            if self.database.locks_rows:
                query = query.with_for_update()
            tasks = {task.id: task for task in session.scalars(query)}
            responses = {
                response.task_id: response
                for response in session.scalars(
                    select(TaskResponse).where(
                        TaskResponse.task_id.in_(set(task_ids)), TaskResponse.endpoint == endpoint
                    )
                )
            }
            decisions = []
            for task_id, counts in zip(task_ids, again or [True] * len(task_ids), strict=True):
                task, response = tasks.get(task_id), responses.get(task_id)
                if task is None:
                    decisions.append((Receipt.UNKNOWN, 0))
                elif response is None and (task.receipt_checked or now > task.deadline):
                    decisions.append((Receipt.STALE, 0))
                elif response is None:
                    responses[task_id] = response = _new_response(task_id, endpoint, now)
                    session.add(response)
                    decisions.append((Receipt.RUN, 1))
                elif response.status == ResponseStatus.FINISHED.value:
                    decisions.append((Receipt.FINISHED, response.attempts))
                else:
                    if counts:
                        response.attempts += 1
                        response.last_modified_time = now
                    decisions.append((Receipt.RUN, response.attempts))
            return decisions

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


def _new_response(task_id: int, endpoint: str, now) -> TaskResponse:
    return TaskResponse(
        task_id=task_id,
        endpoint=endpoint,
        status=ResponseStatus.CREATED.value,
        errnr=0,
        attempts=1,
        start_time=now,
        last_modified_time=now,
    )
