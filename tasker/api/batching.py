"""Store what concurrent requests ask for together: one transaction for many under load.

While `in_flight` batches are being stored, new calls wait in line; when one is done,
everything in line goes in the next batch. With no load a call is stored at once, alone;
under load the batches grow by themselves, and the database commits once per batch instead
of once per request. A batch holds at most `max_size` items and, when items are weighed, at
most `max_weight` (one item at least): a batch of large tasks stays one statement the
database accepts.
"""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable, Generic, TypeVar

Item = TypeVar("Item")


class Batcher(Generic[Item]):
    """Runs `store(items)` (blocking, in the executor) on batches of submitted items."""

    def __init__(
        self,
        store: Callable[[list[Item]], list[Any] | None],
        run_blocking: Callable[..., Awaitable[Any]],
        max_size: int = 200,
        in_flight: int = 2,
        weigh: Callable[[Item], int] | None = None,
        max_weight: int = 0,
    ) -> None:
        self.store = store
        self.run_blocking = run_blocking
        self.max_size = max_size
        self.in_flight = in_flight
        self.weigh = weigh
        self.max_weight = max_weight
        self._waiting: list[tuple[Item, asyncio.Future]] = []
        self._draining = 0

    async def submit(self, item: Item) -> Any:
        """Store `item` with whatever else is waiting; return its result (or raise its error).

        `store` returns one result per item (an exception instance is raised to its caller),
        or None when there is nothing to return.
        """
        future = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        if self._draining < self.in_flight:
            self._draining += 1
            asyncio.ensure_future(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            while self._waiting:
                count = self._next_count()
                batch, self._waiting = self._waiting[:count], self._waiting[count:]
                try:
                    results = await self.run_blocking(self.store, [item for item, _ in batch])
                except Exception as exc:  # the whole batch failed: each caller gets the error
                    results = [exc] * len(batch)
                for (_, future), result in zip(batch, results or [None] * len(batch), strict=True):
                    if future.done():
                        continue
                    if isinstance(result, Exception):
                        future.set_exception(result)
                    else:
                        future.set_result(result)
        finally:
            self._draining -= 1

    def _next_count(self) -> int:
        """How many of the waiting items go in the next batch."""
        if self.weigh is None:
            return self.max_size
        count, weight = 0, 0
        for item, _ in self._waiting[: self.max_size]:
            weight += self.weigh(item)
            if count and weight > self.max_weight:
                break
            count += 1
        return count
