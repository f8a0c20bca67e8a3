"""Watch the IOLoop: how late it wakes up tells how long something held it.

Every request of an API process waits while one callback runs on its loop, so a callback that
computes for 300 ms adds 300 ms to all of them. The watch wakes up every `interval` seconds;
the time it wakes up too late is the loop's lag. A lag over `warn_after` is logged, and the
worst of the last minute is shown by `/health`.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time

log = logging.getLogger(__name__)
WINDOW_SECONDS = 60.0


class LoopWatch:
    """Measures the IOLoop's lag while `run()` runs on it."""

    def __init__(self, warn_after: float, interval: float = 0.02) -> None:
        self.warn_after = warn_after
        self.interval = interval
        self._lags: collections.deque[tuple[float, float]] = collections.deque()

    async def run(self) -> None:
        """Wake up every `interval` until cancelled, recording how late each wake-up was."""
        while True:
            asleep = time.monotonic()
            await asyncio.sleep(self.interval)
            woke = time.monotonic()
            self.record(woke, woke - asleep - self.interval)

    def record(self, now: float, lag: float) -> None:
        """Keep `lag` (seconds) if it is one worth showing; warn if it is one worth a line."""
        if lag > self.warn_after:
            log.warning("the IOLoop was held for %.0f ms", lag * 1000)
        if lag >= 0.001:
            self._lags.append((now, lag))
        while self._lags and self._lags[0][0] < now - WINDOW_SECONDS:
            self._lags.popleft()

    def worst(self) -> float:
        """The largest lag of the last minute, in seconds."""
        horizon = time.monotonic() - WINDOW_SECONDS
        return max((lag for when, lag in self._lags if when >= horizon), default=0.0)
