"""What a manager does with task-responses: register, record receipt, record the result."""

from __future__ import annotations

import dataclasses
import enum
import json
import logging
from typing import Any

from sqlalchemy import func, select

from tasker.clock import utcnow
from tasker.errors import DuplicateRow
from tasker.status import ResponseStatus, TaskStatus
from tasker.storage.database import Database, retry_conflicts
from tasker.storage.models import EndpointRegistration, Task, TaskResponse

log = logging.getLogger(__name__)


class Receipt(str, enum.Enum):
    """What a manager should do with a task that reached it."""

    RUN = "run"  # received in time (or received before and not finished): run the handler
    FINISHED = "finished"  # this endpoint has recorded its result already: acknowledge only
    STALE = "stale"  # not received before the delivery deadline: never start it
    UNKNOWN = "unknown"  # no such task in the database


@dataclasses.dataclass(frozen=True)
class Result:
    """What a handler answered for one task."""

    task_id: int
    errnr: int
    errmsg: str | None
    payload: Any


class ResponseStore:
    """Task-response rows as one manager sees them. Every method is blocking."""

    def __init__(self, database: Database) -> None:
        self.database = database

    @retry_conflicts
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

    @retry_conflicts
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
        """Record one result; see `record_results`."""
        return self.record_results([Result(task_id, errnr, errmsg, payload)], endpoint)[0]

    @retry_conflicts
    def record_results(self, results: list[Result], endpoint: str) -> list[str]:
        """Finish this endpoint's responses, in one transaction; mark DONE every task whose
        endpoints have all finished. Returns each task's status afterwards.

        The task rows are locked first (in id order), so two endpoints finishing one task at
        the same moment see each other's result and the last one marks it DONE.
        """
        now = utcnow()
        task_ids = {result.task_id for result in results}
        with self.database.transaction() as session:
            query = select(Task).where(Task.id.in_(task_ids)).order_by(Task.id)
            if self.database.locks_rows:
                query = query.with_for_update()
            tasks = {task.id: task for task in session.scalars(query)}
            responses = {
                response.task_id: response
                for response in session.scalars(
                    select(TaskResponse).where(TaskResponse.task_id.in_(task_ids), TaskResponse.endpoint == endpoint)
                )
            }
            for result in results:
                response = responses.get(result.task_id)
                if response is None:
                    responses[result.task_id] = response = _new_response(result.task_id, endpoint, now)
                    session.add(response)
                response.status = ResponseStatus.FINISHED.value
                response.errnr = result.errnr
                response.errmsg = result.errmsg
                response.payload = json.dumps(result.payload)
                response.last_modified_time = now
            session.flush()
            finished = dict(
                session.execute(
                    select(TaskResponse.task_id, func.count())
                    .where(TaskResponse.task_id.in_(task_ids), TaskResponse.status == ResponseStatus.FINISHED.value)
                    .group_by(TaskResponse.task_id)
                ).all()
            )
            for task in tasks.values():
                if finished.get(task.id) == len(task.endpoint_list()) and task.status in _OPEN:
                    task.status = TaskStatus.DONE.value
                    task.receipt_checked = True
                    task.claim_until = None
                    task.last_modified_time = now
            return [tasks[result.task_id].status if result.task_id in tasks else "" for result in results]


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
