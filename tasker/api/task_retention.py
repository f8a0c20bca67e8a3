"""Task retention: the API deletes tasks older than `api.retention_days` (0 keeps all), now and then.

A round runs when the API starts and every INTERVAL seconds afterwards. It goes through every
task type the database holds, oldest tasks first, one batch (tasker.storage.task_retention.BATCH
tasks) per transaction in the executor, with a PAUSE on the IOLoop between two batches, so the
database serves everything else meanwhile. Several API processes may prune at once: each task
is deleted once, by whichever comes first.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from typing import Any, Awaitable, Callable

from tasker.clock import utcnow
from tasker.storage.task_retention import TaskRetentionStore

log = logging.getLogger(__name__)
INTERVAL = 3600.0  # seconds between two rounds
PAUSE = 0.2  # seconds between two batches of a round

# Runs a blocking call in the API's executor (Dispatcher.storage).
Blocking = Callable[..., Awaitable[Any]]


class TaskRetention:
    """Prunes old tasks in rounds of small batches."""

    def __init__(self, store: TaskRetentionStore, days: int, blocking: Blocking, pause: float = PAUSE) -> None:
        self.store = store
        self.days = days
        self.blocking = blocking
        self.pause = pause

    async def prune(self) -> int:
        """One round: delete every settled task created and last changed more than `days` days
        ago; return how many were deleted."""
        if self.days <= 0:
            return 0
        cutoff = utcnow() - dt.timedelta(days=self.days)
        deleted = 0
        for task_type in await self.blocking(self.store.task_types):
            deleted += await self.prune_type(task_type, cutoff)
        if deleted:
            log.info("task retention: deleted %d tasks created and last changed before %s", deleted, cutoff)
        return deleted

    async def prune_type(self, task_type: str, cutoff: dt.datetime) -> int:
        """Delete the settled tasks of one type created and last changed before `cutoff`."""
        deleted = 0
        after = None
        while True:
            pruned = await self.blocking(self.store.prune, task_type, cutoff, after)
            deleted += pruned.deleted
            if pruned.next is None:
                return deleted
            after = pruned.next
            await asyncio.sleep(self.pause)
