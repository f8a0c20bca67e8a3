"""Keep a task's status in step with its responses: lock the task rows, ask the lifecycle, write.

Transactions that change responses and then the task's status lock the task rows first, in
id order, so two endpoints finishing one task at once see each other's result, and two such
transactions never deadlock.
"""

from __future__ import annotations

import datetime as dt
from typing import Iterable

from sqlalchemy import select, update
from sqlalchemy.engine import Connection

from tasker.lifecycle import task_status
from tasker.status import ResponseState, TaskStatus
from tasker.storage.models import RESPONSE, TASK


def lock_tasks(connection: Connection, task_ids: Iterable[int], locks_rows: bool) -> dict[int, TaskStatus]:
    """Lock the task rows (in id order) and return each one's status."""
    query = select(TASK.c.id, TASK.c.status).where(TASK.c.id.in_(set(task_ids))).order_by(TASK.c.id)
    if locks_rows:
        query = query.with_for_update()
    return {row.id: TaskStatus(row.status) for row in connection.execute(query)}


def refresh_status(connection: Connection, statuses: dict[int, TaskStatus], now: dt.datetime) -> dict[int, TaskStatus]:
    """Recompute the status of locked tasks from their responses and store the changes;
    return every task's status afterwards."""
    if not statuses:
        return {}
    states: dict[int, list[ResponseState]] = {task_id: [] for task_id in statuses}
    rows = connection.execute(select(RESPONSE.c.task_id, RESPONSE.c.state).where(RESPONSE.c.task_id.in_(statuses)))
    for task_id, state in rows:
        states[task_id].append(ResponseState(state))
    after = {task_id: task_status(statuses[task_id], states[task_id]) for task_id in statuses}
    changed: dict[TaskStatus, list[int]] = {}
    for task_id, status in after.items():
        if status is not statuses[task_id]:
            changed.setdefault(status, []).append(task_id)
    for status, task_ids in changed.items():
        values = {"status": status.value, "last_modified_time": now}
        if status is not TaskStatus.CREATED:
            values["claim_until"] = None
        connection.execute(update(TASK).where(TASK.c.id.in_(task_ids)).values(**values))
    return after
