"""Following one task until it settles: its event stream, GETs to refresh, polling when need be.

`Follower.views()` yields the task as `GET /<type>/<identifier>` shows it, each time it changes,
and ends with the view that is `settled`. Events (`GET /events?type=T&identifier=I`) patch the
responses at once; a GET, at most four a second, brings the rest (output tails, times), and
one comes every second anyway while an endpoint runs, since output moves without events.

The stream is opened before the first GET, so no change falls between the two. When it cannot
be opened (503: the API has as many streams as it serves; an API without events) or breaks,
the follower polls with `?wait=` and tries the stream again every few seconds, sending the id
of the last event it got as `Last-Event-ID`. Polls keep a pace of their own (POLL_EVERY), should
a server answer `?wait=` at once.

An API that cannot be reached at the first GET is an error at once, as for `tasker get`: nothing
was shown yet, and a wrong URL should not cost a minute. Once the task was shown, an API out of
reach (a restart) is tried again for a minute before the follower gives up.
"""

from __future__ import annotations

import logging
import time
from typing import Callable, Iterator

from tasker.client.api_client import ApiClient
from tasker.client.errors import ClientError, Unreachable
from tasker.client.sse import END, ID_ONLY, Event, EventReader
from tasker.client.task_view import apply_event, responses

log = logging.getLogger(__name__)
REFRESH = 0.25  # at most four GETs a second
TAIL_EVERY = 1.0  # a GET a second while an endpoint runs: its output tail
QUIET_EVERY = 5.0  # and every 5 s anyway, should an event go astray
POLL_WAIT = 1  # seconds of `?wait=` while polling: a view a second
POLL_EVERY = 0.5  # at least this long between two polls, whatever the server answers
REOPEN_AFTER = 5.0
GIVE_UP_AFTER = 60.0
STREAM_READ_TIMEOUT = 45.0  # the API pings every 15 s


class Follower:
    """Follows one task; `notice` says how (empty while the stream serves)."""

    def __init__(
        self,
        client: ApiClient,
        task_type: str,
        identifier: str,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.client = client
        self.task_type = task_type
        self.identifier = identifier
        self.clock = clock
        self.sleep = sleep
        self.notice = ""
        self.last_event_id: str | None = None
        self._reader: EventReader | None = None
        self._lost_at = 0.0
        self._last_get = 0.0
        self._dirty = False  # events came that a GET has not caught up with yet

    def views(self) -> Iterator[dict]:
        """The task's views as it changes, up to and including the first that is settled."""
        self._reader = self._open()
        try:
            view = self._get(retry=False)
            yield view
            while not view["task"].get("settled"):
                view = yield from self._next_views(view)
        finally:
            self._close()

    def _next_views(self, view: dict) -> Iterator[dict]:
        """Wait for the next change; yield the views it makes and return the latest."""
        if self._reader is None:
            view = self._poll()
            yield view
            if self.clock() - self._lost_at >= REOPEN_AFTER and not view["task"].get("settled"):
                self._reader = self._open()
                if self._reader is not None:  # what happened while polling: read it once
                    view = self._get()
                    yield view
            return view
        event = self._reader.next(self._due(view) - self.clock())
        if event is END:
            self._reader, self._lost_at = None, self.clock()
            self.notice = "the event stream ended: polling"
            return view
        if event is not False and event.kind == ID_ONLY:  # where to start again, nothing more
            self.last_event_id = event.id
            return view
        if event is False or self._refresh_needed(event, view):
            view = self._get()
            yield view
        elif event.kind == "response" and isinstance(event.data, dict) and apply_event(view, event.data):
            yield view
        return view

    def _refresh_needed(self, event: Event, view: dict) -> bool:
        """Take in an event; whether it calls for a GET now."""
        if event.id is not None:
            self.last_event_id = event.id
        data = event.data if isinstance(event.data, dict) else {}
        if event.kind == "reset" or (event.kind == "task" and data.get("settled")):
            return True
        self._dirty = True
        return self.clock() >= self._last_get + REFRESH

    def _due(self, view: dict) -> float:
        if self._dirty:
            return self._last_get + REFRESH
        running = any(response.get("state") == "running" for response in responses(view))
        return self._last_get + (TAIL_EVERY if running else QUIET_EVERY)

    def _open(self) -> EventReader | None:
        query = {"type": self.task_type, "identifier": self.identifier}
        try:
            response = self.client.events(query, self.last_event_id, STREAM_READ_TIMEOUT)
        except ClientError as exc:
            log.debug("no event stream: %s", exc)
            self._lost_at = self.clock()
            self.notice = "no event stream (%s): polling" % exc
            return None
        self.notice = ""
        return EventReader(response)

    def _close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    def _get(self, wait: int | None = None, retry: bool = True) -> dict:
        """The task from the API; an API out of reach is tried again for GIVE_UP_AFTER seconds
        (with `retry`)."""
        since, delay = None, 0.5
        while True:
            try:
                view = self.client.task(self.task_type, self.identifier, wait)
            except Unreachable as exc:
                if not retry:
                    raise
                since = since if since is not None else self.clock()
                if self.clock() - since >= GIVE_UP_AFTER:
                    raise
                self.notice = "%s: trying again" % exc
                self.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            self._last_get, self._dirty = self.clock(), False
            if since is not None:
                self.notice = "" if self._reader is not None else "polling"
            return view

    def _poll(self) -> dict:
        """A GET with `?wait=`; one that came back early leaves the rest of POLL_EVERY to wait."""
        started = self.clock()
        view = self._get(POLL_WAIT)
        left = started + POLL_EVERY - self.clock()
        if left > 0 and not view["task"].get("settled"):
            self.sleep(left)
        return view
