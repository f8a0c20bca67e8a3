"""Event retention: every API process deletes the events older than `api.event_retention`
seconds, a small batch a transaction, through its executor.

Several API processes may prune at once: each deletes the oldest ids first, so they only ever
delete the same rows or none. A round deletes at most `MAX_BATCHES` batches; what is left goes
in the next round. Rounds come every quarter of the retention, at most every minute.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging

from tasker.api.event_hub import Storage
from tasker.clock import utcnow
from tasker.errors import StorageUnavailable
from tasker.storage.event_feed import EventFeed

log = logging.getLogger(__name__)
BATCH = 1000  # events one transaction deletes at most
MAX_BATCHES = 100  # batches one round deletes at most


class EventRetention:
    """Prunes the event table of events older than `seconds` (0: keeps every event)."""

    def __init__(self, feed: EventFeed, storage: Storage, seconds: float) -> None:
        self.feed = feed
        self.storage = storage
        self.seconds = seconds
        self.interval = min(60.0, max(0.5, seconds / 4))
        self._loop: asyncio.Task | None = None

    def start(self) -> None:
        """Start pruning in rounds on the running loop (nothing when events are kept for ever)."""
        if self.seconds > 0:
            self._loop = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        """Stop between two batches."""
        if self._loop is not None:
            self._loop.cancel()
            await asyncio.gather(self._loop, return_exceptions=True)

    async def prune(self) -> int:
        """One round: delete the events older than the retention, batch by batch; how many went."""
        total = 0
        for _ in range(MAX_BATCHES):
            before = utcnow() - dt.timedelta(seconds=self.seconds)
            deleted = await self.storage(self.feed.prune, before, BATCH)
            total += deleted
            if deleted < BATCH:
                break
        if total:
            log.info("%d events older than %g s pruned", total, self.seconds)
        return total

    async def _run(self) -> None:
        while True:
            try:
                await self.prune()
            except StorageUnavailable as exc:
                log.warning("events not pruned: %s", exc)
            except Exception:
                log.exception("events not pruned")
            await asyncio.sleep(self.interval)
