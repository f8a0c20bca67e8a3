"""What the event hub hands events to: a stream's bounded queue (`Subscription`) and a request
waiting for its task to settle (`Waiter`). Neither ever makes the hub wait.

A stream's queue holds at most `MAX_QUEUED` events; a stream that falls further behind is
ended, so that its client comes back with `Last-Event-ID` and reads what it missed from the
database instead of growing this process's memory.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
from typing import Callable, Protocol

from tasker.storage.events import TASK_EVENT, Event

MAX_QUEUED = 10000  # events a stream may have waiting to be sent before it is ended
# Subscribers are kept by (type, identifier), either None for "any": an event finds its own in
# four lookups, however many subscribers there are.
Key = tuple[str | None, str | None]


class Listener(Protocol):
    """What the hub hands events to."""

    key: Key

    def deliver(self, event: Event) -> None:
        """Take one event that matches `key` (never blocks)."""

    def end(self) -> None:
        """The hub stops, or the client went away: stop waiting."""


class Subscription:
    """An event stream's share of the hub: the events that match its filters, in id order, up to
    `limit` waiting; past that it is `overflowed` (emptied, `on_overflow` called) and takes no more."""

    def __init__(
        self,
        task_type: str | None,
        identifier: str | None,
        limit: int = MAX_QUEUED,
        on_overflow: Callable[[], None] | None = None,
    ) -> None:
        self.key: Key = (task_type, identifier)
        self.limit = limit
        self.on_overflow = on_overflow
        self.overflowed = False
        self.ended = False
        self._queue: collections.deque[Event] = collections.deque()
        self._arrived = asyncio.Event()

    def deliver(self, event: Event) -> None:
        if self.overflowed or self.ended:
            return
        if len(self._queue) >= self.limit:
            self.overflowed = True
            self._queue.clear()
            self._arrived.set()
            if self.on_overflow is not None:
                self.on_overflow()
            return
        self._queue.append(event)
        self._arrived.set()

    def end(self) -> None:
        self.ended = True
        self._arrived.set()

    def queued(self) -> int:
        """How many events wait to be taken."""
        return len(self._queue)

    async def next_batch(self, timeout: float) -> list[Event]:
        """Every event queued since the last call, waiting up to `timeout` seconds for the first;
        [] when none came in time (or the subscription overflowed or ended)."""
        if not self._queue and not (self.overflowed or self.ended):
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), timeout)
        self._arrived.clear()
        batch = list(self._queue)
        self._queue.clear()
        return batch


class Waiter:
    """A request waiting for its task to settle: woken by a `task` event of it that says settled."""

    def __init__(self, task_type: str, identifier: str) -> None:
        self.key: Key = (task_type, identifier)
        self.ended = False
        self._woken = asyncio.Event()

    def deliver(self, event: Event) -> None:
        if event.kind == TASK_EVENT and _says_settled(event.data):
            self._woken.set()

    def end(self) -> None:
        self.ended = True
        self._woken.set()

    async def wait(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds to be woken; whether it was (settled, or ended)."""
        try:
            await asyncio.wait_for(self._woken.wait(), timeout)
        except asyncio.TimeoutError:
            return False
        self._woken.clear()
        return True


def _says_settled(data: str) -> bool:
    try:
        return bool(json.loads(data).get("settled"))
    except (ValueError, AttributeError):
        return True  # unreadable: the waiter reads the task again to know
