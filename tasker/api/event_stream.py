"""One client's event stream: what it missed since `Last-Event-ID`, read from the database, then
what the hub brings, in id order and each event once; as Server-Sent Events.

The seam between the two: the stream reads the database up to the hub's position in windows of
at most `WINDOW` ids while it is far behind, then subscribes to the hub and, in the same step on
the loop, takes the hub's position as the end of the last stretch it reads from the database.
The hub hands the subscription exactly the events after that position, so nothing is missed
nor read twice; live events with an id the client has already got (it came from an API process
ahead of this one) are dropped.

A client whose `Last-Event-ID` is older than the retention (the events after it may be pruned),
or newer than every stored event (the database was reset), gets `event: reset` with the id to
resume from and a reason; the stream goes on from there.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Protocol

from tasker.api.event_hub import EventHub, Storage
from tasker.api.event_listeners import MAX_QUEUED, Subscription
from tasker.storage.event_feed import EventFeed
from tasker.storage.events import Event

log = logging.getLogger(__name__)
PING_SECONDS = 15.0  # a `: ping` comment this often, so that proxies and clients see the stream alive
WINDOW = 2000  # ids one read of missed events covers at most: each read is short, whatever the filters
NEAR = 1000  # ids behind the hub from which a stream subscribes and reads the rest while events queue
PING = ": ping\n\n"
PRUNED = "events after %d are no longer kept (api.event_retention): read the state of the tasks you follow again"
UNKNOWN = "event %d is newer than every stored event (the events were reset): read the state of the tasks again"


class Sink(Protocol):
    """Where a stream's text goes: the HTTP response."""

    async def send(self, text: str) -> bool:
        """Write and flush `text`; False when the client is gone."""

    def abort(self) -> None:
        """Close the connection now (the client reconnects with the last id it got)."""


def event_frame(event: Event) -> str:
    """One event as Server-Sent Events: its id, its kind as the event name, its JSON as data."""
    return "id: %d\nevent: %s\ndata: %s\n\n" % (event.id, event.kind, event.data)


def reset_frame(position: int, reason: str) -> str:
    """`event: reset` with the id to resume from and why."""
    return "id: %d\nevent: reset\ndata: %s\n\n" % (position, json.dumps({"reason": reason}))


class EventStream:
    """The events of one client's stream, filtered by task type and identifier (None: any)."""

    def __init__(
        self,
        hub: EventHub,
        sink: Sink,
        task_type: str | None = None,
        identifier: str | None = None,
        ping_seconds: float = PING_SECONDS,
        queue_limit: int = MAX_QUEUED,
    ) -> None:
        self.hub = hub
        self.sink = sink
        self.task_type = task_type
        self.identifier = identifier
        self.ping_seconds = ping_seconds
        self.queue_limit = queue_limit
        self.last = 0  # the newest id the client got (or need not get)
        self.subscription: Subscription | None = None
        self.stopped = False
        self.overflowed = False
        self._resume_from: int | None = None

    @property
    def feed(self) -> EventFeed:
        return self.hub.feed

    @property
    def storage(self) -> Storage:
        return self.hub.storage

    def open(self, last_id: int | None) -> None:
        """Start the stream after `last_id`, or from now on when None: subscribed at once, so
        that every event the hub hands over after this call is sent. The hub must be ready."""
        self._resume_from = last_id
        if last_id is None:
            self._subscribe()
            self.last = self._position()

    async def run(self) -> None:
        """Serve the stream until the client goes away, the hub stops, or the client falls too
        far behind (`overflowed`): first what the client missed, if it said what it got."""
        if self._resume_from is not None:
            await self._resume(self._resume_from)
        await self._live()

    def close(self) -> None:
        """Take the stream's subscription off the hub (safe to repeat)."""
        if self.subscription is not None:
            self.hub.unsubscribe(self.subscription)

    def stop(self) -> None:
        """End the stream: the client went away."""
        self.stopped = True
        if self.subscription is not None:
            self.subscription.end()

    async def _resume(self, last: int) -> None:
        if last >= self._position():  # none to read up to the hub: the database says if it may
            oldest, newest = await self.storage(self.feed.bounds)
            if last > newest:
                last = await self._reset(self._position(), UNKNOWN % last)
            elif newest > last and (oldest is None or oldest > last + 1):
                last = await self._reset(self._position(), PRUNED % last)
        while not self.stopped and self._position() - last > NEAR:
            last = await self._replay(last, self._position())
        self._subscribe()
        # No await between subscribing and reading the position: the hub hands the subscription
        # exactly the events after it.
        self.last = await self._replay(last, self._position())

    async def _replay(self, last: int, target: int) -> int:
        """Send the stored events after `last` up to `target`; the id the client is at afterwards."""
        while last < target and not self.stopped:
            upto = min(last + WINDOW, target)
            window = await self.storage(self.feed.window, last, upto, self.task_type, self.identifier)
            if window.pruned:
                return await self._reset(target, PRUNED % last)
            if window.events:
                await self._send("".join(event_frame(event) for event in window.events))
            last = upto
        return last

    async def _reset(self, position: int, reason: str) -> int:
        log.info("event stream reset to %d: %s", position, reason)
        await self._send(reset_frame(position, reason))
        return position

    async def _live(self) -> None:
        assert self.subscription is not None
        loop = asyncio.get_running_loop()
        next_ping = loop.time() + self.ping_seconds
        while not self.stopped:
            batch = await self.subscription.next_batch(max(0.0, next_ping - loop.time()))
            if self.subscription.overflowed or self.subscription.ended:
                return
            fresh = [event for event in batch if event.id > self.last]
            text = "".join(self.hub.rendered(event, event_frame) for event in fresh)
            if fresh:
                self.last = fresh[-1].id
            if loop.time() >= next_ping:
                text += PING
                next_ping = loop.time() + self.ping_seconds
            if text:
                await self._send(text)

    async def _send(self, text: str) -> None:
        if not self.stopped and not await self.sink.send(text):
            self.stop()

    def _subscribe(self) -> None:
        self.subscription = Subscription(self.task_type, self.identifier, self.queue_limit, self._overflow)
        self.hub.subscribe(self.subscription)

    def _overflow(self) -> None:
        log.warning(
            "event stream (type %s, identifier %s) ended: more than %d events waited to be sent",
            self.task_type,
            self.identifier,
            self.queue_limit,
        )
        self.overflowed = True
        self.stop()
        self.sink.abort()

    def _position(self) -> int:
        position = self.hub.position
        assert position is not None, "the hub is not ready"
        return position
