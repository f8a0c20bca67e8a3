"""Task retention: deleting old tasks, a small batch per transaction.

A task goes once it was created and last changed before the cutoff, and none of its runs is
open (queued, received or running): a task something may still happen to stays, however old.
Its responses, earlier runs and output chunks go with it, deleted here rather than left to the
foreign keys' ON DELETE CASCADE, which SQLite does not enforce unless asked to.

Each batch locks its tasks (in id order, as every change of a task does) and checks them again
under the lock, so a retry that reopens a task meanwhile keeps it, and several API processes
pruning at once delete each task once: the one that comes second finds it gone.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from sqlalchemy import ColumnElement, and_, bindparam, delete, or_, select
from sqlalchemy.engine import Connection

from tasker.status import OPEN_STATES
from tasker.storage.database import Database, retry_conflicts
from tasker.storage.models import OUTPUT, RESPONSE, RUN, TASK

BATCH = 500  # tasks looked at, and deleted at most, per transaction

# (start_time, id) of the last task a batch looked at: where the next one goes on.
Position = tuple[dt.datetime, int]
_IDS = bindparam("ids", expanding=True)
_OPEN = (
    select(RESPONSE.c.task_id)
    .where(RESPONSE.c.task_id.in_(_IDS), RESPONSE.c.state.in_([state.value for state in OPEN_STATES]))
    .distinct()
)
_DELETES = [delete(table).where(table.c.task_id.in_(_IDS)) for table in (OUTPUT, RUN, RESPONSE)]
_DELETE_TASKS = delete(TASK).where(TASK.c.id.in_(_IDS))


@dataclasses.dataclass(frozen=True)
class Pruned:
    """What one batch deleted, and where the next batch of its type goes on (None: done)."""

    deleted: int
    next: Position | None


class TaskRetentionStore:
    """Old tasks, deleted. Every method is blocking: call it from an executor."""

    def __init__(self, database: Database, batch: int = BATCH) -> None:
        self.database = database
        self.batch = batch

    def task_types(self) -> list[str]:
        """Every type the table holds tasks of (configured today or not)."""
        with self.database.connection() as connection:
            return list(connection.execute(select(TASK.c.type).distinct()).scalars())

    @retry_conflicts
    def prune(self, task_type: str, cutoff: dt.datetime, after: Position | None = None) -> Pruned:
        """Delete the settled tasks of `task_type` among the next batch created before `cutoff`
        (oldest first, after `after`) that did not change since."""
        with self.database.connection() as connection:
            seen = connection.execute(_oldest(task_type, cutoff, after, self.batch)).all()
            if not seen:
                return Pruned(0, None)
            deleted = self._delete_settled(connection, [row.id for row in seen], cutoff)
        last = seen[-1]
        return Pruned(deleted, (last.start_time, last.id) if len(seen) == self.batch else None)

    def _delete_settled(self, connection: Connection, task_ids: list[int], cutoff: dt.datetime) -> int:
        locking = select(TASK.c.id).where(TASK.c.id.in_(task_ids), TASK.c.last_modified_time < cutoff)
        locking = locking.order_by(TASK.c.id)
        if self.database.locks_rows:
            locking = locking.with_for_update()
        still_old = list(connection.execute(locking).scalars())
        if not still_old:
            return 0
        still_open = set(connection.execute(_OPEN, {"ids": still_old}).scalars())
        doomed = [task_id for task_id in still_old if task_id not in still_open]
        if doomed:
            for statement in _DELETES:
                connection.execute(statement, {"ids": doomed})
            connection.execute(_DELETE_TASKS, {"ids": doomed})
        return len(doomed)


def _oldest(task_type: str, cutoff: dt.datetime, after: Position | None, batch: int):
    """The next `batch` tasks of the type created before `cutoff`, oldest first."""
    conditions: list[ColumnElement[bool]] = [TASK.c.type == task_type, TASK.c.start_time < cutoff]
    if after is not None:
        start_time, task_id = after
        conditions.append(
            or_(TASK.c.start_time > start_time, and_(TASK.c.start_time == start_time, TASK.c.id > task_id))
        )
    statement = select(TASK.c.id, TASK.c.start_time).where(*conditions)
    statement = statement.order_by(TASK.c.start_time, TASK.c.id).limit(batch)
    for dialect in ("mysql", "mariadb"):  # a range of the index, never the type's whole range
        statement = statement.with_hint(TASK, "FORCE INDEX (ix_task_type_start)", dialect_name=dialect)
    return statement
