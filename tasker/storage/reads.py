"""Reading tasks with their responses, many at once: the API reads the tasks that concurrent
GETs ask for in one transaction of two statements, which the caller runs on one snapshot."""

from __future__ import annotations

from sqlalchemy import bindparam, select, tuple_
from sqlalchemy.engine import Connection

from tasker.errors import TaskNotFound
from tasker.records import ResponseRecord, TaskRecord
from tasker.storage.models import RESPONSE, TASK, response_record, task_record

Read = tuple[TaskRecord, list[ResponseRecord]]

_RESPONSES = select(RESPONSE).where(RESPONSE.c.task_id.in_(bindparam("ids", expanding=True))).order_by(RESPONSE.c.id)


def read_tasks(connection: Connection, keys: list[tuple[str, str]]) -> list[Read | TaskNotFound]:
    """For each (type, identifier): the task and its responses, or TaskNotFound."""
    wanted = set(keys)
    if len(wanted) == 1:  # the usual case alone: a plain equality reads the unique index directly
        ((task_type, identifier),) = wanted
        where = (TASK.c.type == task_type) & (TASK.c.identifier == identifier)
    else:
        where = tuple_(TASK.c.type, TASK.c.identifier).in_(wanted)
    tasks = {(row.type, row.identifier): task_record(row) for row in connection.execute(select(TASK).where(where))}
    responses: dict[int, list[ResponseRecord]] = {task.id: [] for task in tasks.values()}
    if responses:
        for row in connection.execute(_RESPONSES, {"ids": list(responses)}):
            responses[row.task_id].append(response_record(row))
    return [
        (tasks[key], responses[tasks[key].id]) if key in tasks else TaskNotFound("no %s task with identifier %r" % key)
        for key in keys
    ]
