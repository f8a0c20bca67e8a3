"""The event hub of one API process: one reader brings the new events from the database, and
hands each to the subscribers whose filters it matches, in memory: event streams (`GET /events`)
and requests waiting for a task to settle (`GET /<type>/<identifier>?wait=S`).

The reader asks every `READ_INTERVAL` seconds, through the executor, for the events past its
position (`read_settled`: never past an id that a transaction still open may fill). It starts at
the newest event written a few seconds before the API started and never reads back through
history: a stream that needs older events reads them itself (tasker.api.event_stream).

Handing an event over never waits for a subscriber (tasker.api.event_listeners): a stream that
falls too far behind is ended, and its client comes back with `Last-Event-ID`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, Awaitable, Callable, Iterator

from tasker.api.dispatch import Dispatcher
from tasker.api.event_listeners import Key, Listener, Waiter
from tasker.clock import utcnow_precise
from tasker.config import ApiConfig
from tasker.errors import Overloaded, StorageUnavailable
from tasker.storage.event_feed import EventFeed
from tasker.storage.events import Event

log = logging.getLogger(__name__)
READ_INTERVAL = 0.25  # seconds between the reader's questions when nothing new came
READ_BATCH = 1000  # events one question brings at most; a full batch is followed at once by the next
RENDERED_KEPT = 10000  # events whose text streams share (`rendered`) before the cache starts over
STOP_SECONDS = 5.0  # how long a stopping API waits for its streams to end and its waiters to answer
Storage = Callable[..., Awaitable[Any]]


class EventHub:
    """The reader of one API process and its subscribers; it counts the streams and waiters open
    and refuses more than `max_streams` and `max_waiters` (Overloaded: 503)."""

    def __init__(
        self,
        feed: EventFeed,
        storage: Storage,
        max_streams: int,
        max_waiters: int,
        interval: float = READ_INTERVAL,
    ) -> None:
        self.feed = feed
        self.storage = storage
        self.max_streams = max_streams
        self.max_waiters = max_waiters
        self.interval = interval
        # The id up to which events were handed over (None until the reader reached the database).
        self.position: int | None = None
        self.streams = 0
        self.waiters = 0
        self.stopping = False
        self._listeners: dict[Key, set[Listener]] = {}
        self._ready = asyncio.Event()
        self._reader: asyncio.Task | None = None
        self._failing = False
        self._rendered: dict[int, str] = {}

    def start(self) -> None:
        """Start the reader on the running loop."""
        self._reader = asyncio.ensure_future(self._run())

    async def stop(self, timeout: float = STOP_SECONDS) -> None:
        """Stop the reader and end every subscriber: streams end, waiting requests answer now;
        return once they have (or after `timeout` seconds: a client that reads nothing)."""
        self.stopping = True
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
        for listeners in list(self._listeners.values()):
            for listener in list(listeners):
                listener.end()
        deadline = asyncio.get_running_loop().time() + timeout
        while (self.streams or self.waiters) and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.02)

    async def wait_ready(self, timeout: float) -> int:
        """The hub's position once the reader has one, waiting up to `timeout` seconds for it."""
        if self.position is None:
            try:
                await asyncio.wait_for(self._ready.wait(), timeout)
            except asyncio.TimeoutError:
                raise StorageUnavailable("events are not available yet: the database has not answered") from None
        assert self.position is not None
        return self.position

    def subscribe(self, listener: Listener) -> None:
        """Hand `listener` every event after the current position that matches its key."""
        self._listeners.setdefault(listener.key, set()).add(listener)
        if self.stopping:
            listener.end()

    def unsubscribe(self, listener: Listener) -> None:
        """Hand `listener` nothing more (safe to repeat)."""
        listeners = self._listeners.get(listener.key)
        if listeners is not None:
            listeners.discard(listener)
            if not listeners:
                del self._listeners[listener.key]

    def subscribers(self) -> int:
        """How many listeners are subscribed (streams and waiters)."""
        return sum(len(listeners) for listeners in self._listeners.values())

    def rendered(self, event: Event, render: Callable[[Event], str]) -> str:
        """`render(event)`, made once however many streams send the event (streams render every
        event alike: its text is kept by id for the next stream, among the last few thousand)."""
        text = self._rendered.get(event.id)
        if text is None:
            if len(self._rendered) >= RENDERED_KEPT:
                self._rendered.clear()
            text = self._rendered[event.id] = render(event)
        return text

    def counts(self) -> dict[str, int]:
        """The streams and waiters open now, as `/health` shows them."""
        return {"waiters": self.waiters, "event_streams": self.streams}

    @contextlib.contextmanager
    def stream_slot(self) -> Iterator[None]:
        """Count one event stream while the block runs; Overloaded beyond `max_streams`."""
        if self.streams >= self.max_streams:
            raise Overloaded(
                "this API process serves %d event streams already (api.max_event_streams): "
                "try again later, or through another API process" % self.max_streams
            )
        self.streams += 1
        try:
            yield
        finally:
            self.streams -= 1

    @contextlib.contextmanager
    def waiter(self, task_type: str, identifier: str) -> Iterator[Waiter]:
        """A subscribed Waiter for the task while the block runs; Overloaded beyond `max_waiters`."""
        if self.waiters >= self.max_waiters:
            raise Overloaded(
                "this API process has %d requests waiting already (api.max_waiters): "
                "try again later, or read the task without wait" % self.max_waiters
            )
        waiter = Waiter(task_type, identifier)
        self.waiters += 1
        self.subscribe(waiter)
        try:
            yield waiter
        finally:
            self.unsubscribe(waiter)
            self.waiters -= 1

    def publish(self, events: list[Event], upto: int) -> None:
        """Hand each event to the listeners it matches, and move the position to `upto`.

        Done in one step on the loop: a listener subscribed before this call gets every event of
        it, one subscribed after gets none of them, and the position tells which.
        """
        listeners = self._listeners
        for event in events:
            for key in ((event.type, event.identifier), (event.type, None), (None, event.identifier), (None, None)):
                found = listeners.get(key)
                if found:
                    for listener in tuple(found):
                        listener.deliver(event)
        self.position = upto

    async def _run(self) -> None:
        while True:
            try:
                await self._read_new()
            except StorageUnavailable as exc:
                if not self._failing:
                    log.warning("events not read: %s", exc)
                self._failing = True
            except Exception:
                log.exception("events not read")
            await asyncio.sleep(self.interval)

    async def _read_new(self) -> None:
        if self.position is None:
            self.position = await self.storage(self.feed.start, utcnow_precise())
            self._ready.set()
            log.info("event hub reading after event %d", self.position)
        while True:
            if not self._listeners:  # nobody to hand events to: move on without reading them
                before = self.position
                upto, looked_at = await self.storage(self.feed.skip_new, before, READ_BATCH, utcnow_precise())
                if not self._listeners:  # and nobody came meanwhile
                    self.position = upto
                    if looked_at < READ_BATCH or upto == before:  # all read, or held at a gap
                        return
                continue
            events, upto = await self.storage(self.feed.read_new, self.position, READ_BATCH, utcnow_precise())
            if self._failing:
                log.info("events read again after event %d", self.position)
                self._failing = False
            self.publish(events, upto)
            if len(events) < READ_BATCH:
                return


def event_hub_of(settings: ApiConfig, dispatcher: Dispatcher) -> EventHub:
    """The hub of an API process with these settings, reading through the dispatcher's executor."""
    feed = EventFeed(dispatcher.tasks.database)
    return EventHub(feed, dispatcher.storage, settings.max_event_streams, settings.max_waiters)
