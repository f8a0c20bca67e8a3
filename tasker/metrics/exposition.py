"""What `GET /metrics` answers: the fleet's figures, read from the database at most once every
`api.metrics.cache_seconds` however many scrapes come, then this API process's own figures.

The fleet's reading runs through a caller-given way to run blocking work (the API's storage
executor), never on the IOLoop; concurrent scrapes share one reading.
"""

from __future__ import annotations

import asyncio
import time
from typing import Awaitable, Callable, TypeVar

from prometheus_client import CollectorRegistry, Histogram, ProcessCollector, generate_latest
from prometheus_client.registry import Collector

T = TypeVar("T")
RunBlocking = Callable[..., Awaitable[T]]
# The Prometheus text format, version 0.0.4: what every Prometheus server reads.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
POST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """The exposition of one API process: `fleet` (a Collector reading the database), served
    from a cache of `cache_seconds`, and the figures only this process knows."""

    def __init__(self, fleet: Collector, cache_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.cache_seconds = cache_seconds
        self._clock = clock
        self._fleet = CollectorRegistry(auto_describe=False)
        self._fleet.register(fleet)
        self._own = CollectorRegistry(auto_describe=False)
        self._post = Histogram(
            "tasker_api_post_duration_seconds",
            "Seconds this API process took to answer POST /<type> (create a task), by type and HTTP status. "
            "Per API process, unlike the fleet's figures: scrape every API process and sum.",
            ["type", "code"],
            buckets=POST_BUCKETS,
            registry=self._own,
        )
        ProcessCollector(registry=self._own)
        self._cached: tuple[float, bytes] | None = None
        self._reading: asyncio.Future[bytes] | None = None

    def observe_post(self, task_type: str, status: int, seconds: float) -> None:
        """Count one answered POST /<type> that took `seconds`."""
        self._post.labels(task_type, str(status)).observe(seconds)

    async def render(self, run_blocking: RunBlocking) -> bytes:
        """The whole exposition, in the Prometheus text format (`CONTENT_TYPE`)."""
        fleet = await self._fleet_text(run_blocking)
        return fleet + generate_latest(self._own)

    async def _fleet_text(self, run_blocking: RunBlocking) -> bytes:
        cached = self._cached
        if cached is not None and self._clock() - cached[0] < self.cache_seconds:
            return cached[1]
        if self._reading is None:
            self._reading = asyncio.ensure_future(self._read(run_blocking))
        return await self._reading

    async def _read(self, run_blocking: RunBlocking) -> bytes:
        try:
            text = await run_blocking(generate_latest, self._fleet)
            self._cached = (self._clock(), text)  # from its end: one reading at a time, then a pause
            return text
        finally:
            self._reading = None
