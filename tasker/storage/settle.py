"""Keep a task's status in step with its responses: lock the task rows, ask the lifecycle, write.

Transactions that change responses and then the task's status lock the task rows first, in
id order, so two endpoints finishing one task at once see each other's result, and two such
transactions never deadlock.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Iterable

from sqlalchemy import bindparam, select, update
from sqlalchemy.engine import Connection

from tasker.lifecycle import is_settled, seed_status, task_status
from tasker.status import ErrNr, ResponseState, TaskStatus
from tasker.storage.events import task_event
from tasker.storage.events import write as write_events
from tasker.storage.models import RESPONSE, TASK

# Built once: the hot paths run them for every batch (SQLAlchemy caches what they compile to).
_IDS = bindparam("ids", expanding=True)
_LOCK = select(TASK.c.id, TASK.c.status).where(TASK.c.id.in_(_IDS)).order_by(TASK.c.id)
_LOCK_FOR_UPDATE = _LOCK.with_for_update()
_STATES = (
    select(RESPONSE.c.task_id, RESPONSE.c.state, TASK.c.cancel_requested, TASK.c.type, TASK.c.identifier)
    .join(TASK, TASK.c.id == RESPONSE.c.task_id)
    .where(RESPONSE.c.task_id.in_(_IDS))
)
_SET_STATUS = update(TASK).where(TASK.c.id.in_(_IDS))
_SET_STATUS_SENT = _SET_STATUS.values(status=bindparam("b_status"), last_modified_time=bindparam("b_now"))
_SET_STATUS_OVER = _SET_STATUS_SENT.values(claim_until=None)


def never_ran(state: ResponseState, errmsg: str, now: dt.datetime) -> dict[str, Any]:
    """The column values of a run that ended without its handler running: `missing` or `skipped`."""
    return {
        "state": state.value,
        "status": seed_status(state),
        "errnr": ErrNr.GENERAL_ERROR.value,
        "errmsg": errmsg,
        "last_modified_time": now,
    }


def lock_tasks(connection: Connection, task_ids: Iterable[int], locks_rows: bool) -> dict[int, TaskStatus]:
    """Lock the task rows (in id order) and return each one's status."""
    query = _LOCK_FOR_UPDATE if locks_rows else _LOCK
    return {row.id: TaskStatus(row.status) for row in connection.execute(query, {"ids": list(set(task_ids))})}


def refresh_status(connection: Connection, statuses: dict[int, TaskStatus], now: dt.datetime) -> dict[int, TaskStatus]:
    """Recompute the status of locked tasks from their responses and store the changes, with a
    `task` event for each task whose status changed or that is settled now; return every
    task's status afterwards."""
    if not statuses:
        return {}
    states: dict[int, list[ResponseState]] = {task_id: [] for task_id in statuses}
    cancelled: set[int] = set()
    names: dict[int, tuple[str, str]] = {}
    for task_id, state, cancel_requested, task_type, identifier in connection.execute(_STATES, {"ids": list(statuses)}):
        states[task_id].append(ResponseState(state))
        names[task_id] = (task_type, identifier)
        if cancel_requested is not None:
            cancelled.add(task_id)
    after = {task_id: task_status(statuses[task_id], states[task_id], task_id in cancelled) for task_id in statuses}
    changed: dict[TaskStatus, list[int]] = {}
    for task_id, status in after.items():
        if status is not statuses[task_id]:
            changed.setdefault(status, []).append(task_id)
    for status, task_ids in changed.items():
        statement = _SET_STATUS_SENT if status is TaskStatus.CREATED else _SET_STATUS_OVER
        connection.execute(statement, {"ids": task_ids, "b_status": status.value, "b_now": now})
    events = [
        task_event(*names[task_id], after[task_id].value, states[task_id], now)
        for task_id in sorted(names)
        if after[task_id] is not statuses[task_id] or is_settled(states[task_id])
    ]
    write_events(connection, events)
    return after
