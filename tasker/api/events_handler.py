"""`GET /events[?type=T][&identifier=I]`: the events of tasks as Server-Sent Events.

Each event is `id: <id>`, `event: task|response`, `data: <JSON>` and a blank line; a `: ping`
comment comes every 15 s. A client that reconnects with `Last-Event-ID` gets the events it
missed first (tasker.api.event_stream). Tokens go in the `Authorization` header only: a URL
with a token is refused, since URLs end up in logs and histories.
"""

from __future__ import annotations

import logging
import re

from tornado.iostream import StreamClosedError

from tasker.api.base import JsonHandler, Refusal
from tasker.api.event_hub import EventHub
from tasker.api.event_stream import EventStream
from tasker.api.validation import check_identifier
from tasker.errors import InvalidTask, StorageUnavailable

log = logging.getLogger(__name__)
EVENT_STREAM_TYPE = "text/event-stream; charset=utf-8"
READY_SECONDS = 5.0  # how long a new stream waits for a hub that has not reached the database yet
TOKEN_ARGUMENTS = ("token", "access_token")
_EVENT_ID = re.compile(r"[0-9]{1,18}")


def last_event_id(header: str | None) -> int | None:
    """The id of the `Last-Event-ID` header (None when absent or empty); InvalidTask if it is
    not an id this API sends."""
    if header is None or not header.strip():
        return None
    if not _EVENT_ID.fullmatch(header.strip()):
        raise InvalidTask("Last-Event-ID must be the id of an event this API sent (digits), not %r" % header[:30])
    return int(header)


class EventsHandler(JsonHandler):
    """Streams the events that match the filters until the client goes away or the API stops."""

    def initialize(self, hub: EventHub) -> None:
        super().initialize()
        self.hub = hub
        self.stream: EventStream | None = None
        self.gone = False

    def refusal(self) -> Refusal | None:
        if any(name in self.request.query_arguments for name in TOKEN_ARGUMENTS):
            message = "a token goes in the Authorization header only, never in a URL (URLs are logged)"
            return 400, message, {}
        return super().refusal()

    async def get(self) -> None:
        task_type, identifier = self._filters()
        resume = last_event_id(self.request.headers.get("Last-Event-ID"))
        with self.hub.stream_slot():
            await self.hub.wait_ready(READY_SECONDS)
            self.set_header("Content-Type", EVENT_STREAM_TYPE)
            self.set_header("Cache-Control", "no-cache")
            self.set_header("X-Accel-Buffering", "no")
            self.stream = EventStream(self.hub, self, task_type, identifier)
            self.stream.open(resume)  # before the headers: the client gets every event after them
            try:
                if await self.send(""):  # the headers at once: the client knows it is connected
                    await self.stream.run()
            except StorageUnavailable as exc:  # reading what the client missed: it comes back later
                log.warning("event stream ended: %s", exc)
            finally:
                self.stream.close()

    def _filters(self) -> tuple[str | None, str | None]:
        task_type = self.get_query_argument("type", None)
        if task_type is not None and task_type not in self.settings["task_types"]:
            known = ", ".join(self.settings["task_types"])
            raise InvalidTask("type %r is not a task type of this API (task types: %s)" % (task_type[:60], known))
        identifier = self.get_query_argument("identifier", None)
        return task_type, (None if identifier is None else check_identifier(identifier))

    async def send(self, text: str) -> bool:
        """Write and flush `text`; False when the client is gone."""
        if self.gone:
            return False
        try:
            if text:
                self.write(text)
            await self.flush()
        except StreamClosedError:
            self.gone = True
        return not self.gone

    def abort(self) -> None:
        """Close the connection without ending the response: the client reconnects."""
        self.gone = True
        self.request.connection.close()

    def on_connection_close(self) -> None:
        super().on_connection_close()
        self.gone = True
        if self.stream is not None:
            self.stream.stop()
