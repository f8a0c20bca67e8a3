"""An event table in memory, an executor that lets the test move the hub meanwhile, and a sink
that keeps what a stream sends: what the hub and stream unit tests run on."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
from typing import Any, Callable

from tasker.api.event_hub import EventHub
from tasker.storage.event_feed import Window
from tasker.storage.events import Event

NOW = dt.datetime(2030, 1, 1)
_FRAME = re.compile(r"(?:id: (\d+)\n)?event: (\w+)\ndata: (.*)\n\n")


def event(event_id: int, kind: str = "response", task_type: str = "worker", identifier: str = "t1", **data) -> Event:
    """An event as stored; a `task` event says `settled` as given (False by default)."""
    shown = {"type": task_type, "identifier": identifier, **data}
    if kind == "task":
        shown.setdefault("settled", False)
    return Event(event_id, NOW, kind, task_type, identifier, json.dumps(shown))


class FakeFeed:
    """The event table: `rows` by id. `read_new` ignores settling: every stored row is settled."""

    def __init__(self) -> None:
        self.rows: dict[int, Event] = {}
        self.windows: list[tuple[int, int]] = []  # the (after, upto) of each window read
        self.start_at = 0
        self.fail_next = 0  # how many of the next reads raise StorageUnavailable

    def store(self, *events: Event) -> list[Event]:
        for item in events:
            self.rows[item.id] = item
        return list(events)

    def prune(self, upto: int) -> None:
        for event_id in [i for i in self.rows if i <= upto]:
            del self.rows[event_id]

    def start(self, now: dt.datetime) -> int:
        return self.start_at

    def read_new(self, after: int, limit: int, now: dt.datetime) -> tuple[list[Event], int]:
        if self.fail_next:
            from tasker.errors import StorageUnavailable

            self.fail_next -= 1
            raise StorageUnavailable("the database is away")
        found = [self.rows[i] for i in sorted(self.rows) if i > after][:limit]
        return found, found[-1].id if found else after

    def window(self, after: int, upto: int, task_type: str | None, identifier: str | None) -> Window:
        self.windows.append((after, upto))
        oldest = min(self.rows, default=None)
        if upto > after and (oldest is None or oldest > after + 1):
            return Window([], True)
        found = [self.rows[i] for i in sorted(self.rows) if after < i <= upto]
        found = [e for e in found if task_type in (None, e.type) and identifier in (None, e.identifier)]
        return Window(found, False)

    def bounds(self) -> tuple[int | None, int]:
        return min(self.rows, default=None), max(self.rows, default=0)


class Executor:
    """Runs blocking calls at once, after `during` (the test's chance to move the hub while a
    read is "in the executor"), and yields to the loop before and after."""

    def __init__(self) -> None:
        self.during: Callable[[], None] | None = None

    async def __call__(self, call: Callable[..., Any], *args: Any) -> Any:
        await asyncio.sleep(0)
        if self.during is not None:
            self.during()
        result = call(*args)
        await asyncio.sleep(0)
        return result


class Sink:
    """Keeps the text a stream sends. `held` makes sending wait (a client that reads nothing)
    until `abort()`; `gone_after` makes sends fail after that many."""

    def __init__(self, held: bool = False, gone_after: int | None = None) -> None:
        self.text = ""
        self.sends = 0
        self.aborted = False
        self.gone_after = gone_after
        self._released = asyncio.Event()
        if not held:
            self._released.set()

    async def send(self, text: str) -> bool:
        await self._released.wait()
        if self.aborted or (self.gone_after is not None and self.sends >= self.gone_after):
            return False
        self.sends += 1
        self.text += text
        return True

    def abort(self) -> None:
        self.aborted = True
        self._released.set()

    def frames(self) -> list[tuple[str, int | None]]:
        """(event name, id) of every event sent, in order."""
        return [(kind, int(event_id) if event_id else None) for event_id, kind, _ in _FRAME.findall(self.text)]

    def ids(self) -> list[int]:
        """The ids of the `task` and `response` events sent."""
        return [event_id for kind, event_id in self.frames() if kind != "reset" and event_id is not None]


def hub(feed: FakeFeed, executor: Executor, position: int | None = 0, **limits: int) -> EventHub:
    """A hub on the fake feed, not started, at `position`."""
    made = EventHub(feed, executor, limits.get("max_streams", 10), limits.get("max_waiters", 10), interval=0.01)
    made.position = position
    return made


async def until(condition: Callable[[], Any], timeout: float = 2.0) -> None:
    """Let the loop run until `condition()` holds (AssertionError after `timeout` seconds)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("not reached in %ss: %s" % (timeout, condition))
        await asyncio.sleep(0.001)
