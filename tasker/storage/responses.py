"""What a manager does with task-responses: register, record receipt, record the result."""

from __future__ import annotations

import dataclasses
import enum
import json
import logging
from typing import Any

from sqlalchemy import bindparam, func, insert, select, update

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
        ids = set(task_ids)
        with self.database.connection() as connection:
            tasks = {
                row.id: row
                for row in connection.execute(self._locked(TASK.c.deadline, TASK.c.receipt_checked, ids=ids))
            }
            known = {
                row.task_id: [row.status, row.attempts]
                for row in connection.execute(
                    select(RESPONSE.c.task_id, RESPONSE.c.status, RESPONSE.c.attempts).where(
                        RESPONSE.c.task_id.in_(ids), RESPONSE.c.endpoint == endpoint
                    )
                )
            }
            decisions, new_rows, counted = [], [], set()
            for task_id, counts in zip(task_ids, again or [True] * len(task_ids), strict=True):
                task, response = tasks.get(task_id), known.get(task_id)
                if task is None:
                    decisions.append((Receipt.UNKNOWN, 0))
                elif response is None and (task.receipt_checked or now > task.deadline):
                    decisions.append((Receipt.STALE, 0))
                elif response is None:
                    known[task_id] = [ResponseStatus.CREATED.value, 1]
                    new_rows.append(_new_response_values(task_id, endpoint, now))
                    decisions.append((Receipt.RUN, 1))
                elif response[0] == ResponseStatus.FINISHED.value:
                    decisions.append((Receipt.FINISHED, response[1]))
                else:
                    if counts:
                        response[1] += 1
                        counted.add(task_id)
                    decisions.append((Receipt.RUN, response[1]))
            if new_rows:
                connection.execute(insert(RESPONSE), new_rows)
            for task_id in counted:
                connection.execute(
                    update(RESPONSE)
                    .where(RESPONSE.c.task_id == task_id, RESPONSE.c.endpoint == endpoint)
                    .values(attempts=known[task_id][1], last_modified_time=now)
                )
            return decisions

    def _locked(self, *columns: Any, ids: set[int]) -> Any:
        """Select tasks by id with their rows locked, in id order (so two lockers never deadlock)."""
        query = select(TASK.c.id, *columns).where(TASK.c.id.in_(ids)).order_by(TASK.c.id)
        return query.with_for_update() if self.database.locks_rows else query

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
        with self.database.connection() as connection:
            tasks = {
                row.id: row for row in connection.execute(self._locked(TASK.c.endpoints, TASK.c.status, ids=task_ids))
            }
            have = set(
                connection.execute(
                    select(RESPONSE.c.task_id).where(RESPONSE.c.task_id.in_(task_ids), RESPONSE.c.endpoint == endpoint)
                ).scalars()
            )
            missing = [_new_response_values(r.task_id, endpoint, now) for r in results if r.task_id not in have]
            if missing:  # a receipt that was never recorded: the result still is
                connection.execute(insert(RESPONSE), missing)
            connection.execute(
                update(RESPONSE)
                .where(RESPONSE.c.task_id == bindparam("b_task_id"), RESPONSE.c.endpoint == endpoint)
                .values(
                    status=ResponseStatus.FINISHED.value,
                    errnr=bindparam("b_errnr"),
                    errmsg=bindparam("b_errmsg"),
                    payload=bindparam("b_payload"),
                    last_modified_time=now,
                ),
                [
                    {
                        "b_task_id": r.task_id,
                        "b_errnr": r.errnr,
                        "b_errmsg": r.errmsg,
                        "b_payload": json.dumps(r.payload),
                    }
                    for r in results
                ],
            )
            finished = dict(
                connection.execute(
                    select(RESPONSE.c.task_id, func.count())
                    .where(RESPONSE.c.task_id.in_(task_ids), RESPONSE.c.status == ResponseStatus.FINISHED.value)
                    .group_by(RESPONSE.c.task_id)
                ).all()
            )
            statuses = {task.id: task.status for task in tasks.values()}
            done = [
                task.id
                for task in tasks.values()
                if task.status in _OPEN and finished.get(task.id) == len(json.loads(task.endpoints))
            ]
            if done:
                connection.execute(
                    update(TASK)
                    .where(TASK.c.id.in_(done))
                    .values(
                        status=TaskStatus.DONE.value, receipt_checked=True, claim_until=None, last_modified_time=now
                    )
                )
                statuses.update(dict.fromkeys(done, TaskStatus.DONE.value))
            return [statuses.get(result.task_id, "") for result in results]


_OPEN = (TaskStatus.CREATED.value, TaskStatus.SENT.value)
TASK = Task.__table__
RESPONSE = TaskResponse.__table__


def _new_response_values(task_id: int, endpoint: str, now: Any) -> dict[str, Any]:
    return {
        "task_id": task_id,
        "endpoint": endpoint,
        "status": ResponseStatus.CREATED.value,
        "errnr": 0,
        "errmsg": None,
        "payload": None,
        "attempts": 1,
        "start_time": now,
        "last_modified_time": now,
    }
