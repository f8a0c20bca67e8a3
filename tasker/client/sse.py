"""Reading a `GET /events` stream: Server-Sent Events parsed into frames, in a thread of its own.

The thread reads lines as they come (ended by CRLF, LF or a CR alone, as the format allows) and
hands each whole event to a queue; the command's loop takes them with a timeout, so it can
refresh its view while the stream is quiet. A frame with an `id` and nothing else still moves
the id to resume from: it comes as an event of kind `ID_ONLY`. The end of the stream (cleanly,
cut off, or silent past the read timeout) is handed over as `END`.
"""

from __future__ import annotations

import http.client
import json
import logging
import queue
import re
import socket
import threading
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)
END = None
ID_ONLY = ""  # the kind of a frame that only sets the id to resume from
CHUNK = 65536
_LINE_END = re.compile(rb"\r\n|\r|\n")


@dataclass
class Event:
    """One event of the stream: its `kind` (`task`, `response`, `reset`), `id` and decoded `data`."""

    kind: str
    id: str | None
    data: Any = field(default=None)


class FrameParser:
    """Turns the lines of a stream into events (comments and unknown fields are left out)."""

    def __init__(self) -> None:
        self._fields: dict[str, str] = {}
        self._data: list[str] = []

    def feed(self, line: str) -> Event | None:
        """Take one line (without its end); the event it completes, if any."""
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "data":
            self._data.append(value)
        elif name == "event" or (name == "id" and "\0" not in value):
            self._fields[name] = value
        return None

    def _dispatch(self) -> Event | None:
        fields, data = self._fields, self._data
        self._fields, self._data = {}, []
        if not data and "event" not in fields:
            return Event(ID_ONLY, fields["id"]) if "id" in fields else None
        try:
            decoded = json.loads("\n".join(data)) if data else None
        except ValueError:
            decoded = None
        return Event(fields.get("event", "message"), fields.get("id"), decoded)


class LineSplitter:
    """Cuts the bytes of a stream into lines, whatever ends them: CRLF, LF, or CR alone (a CR at
    the end of one read may be the first half of a CRLF split across two)."""

    def __init__(self) -> None:
        self._pending = b""
        self._after_cr = False

    def feed(self, data: bytes) -> list[bytes]:
        """The lines `data` completes, without their ends."""
        if self._after_cr and data:
            self._after_cr = False
            data = data[1:] if data.startswith(b"\n") else data
        buffer, lines, start = self._pending + data, [], 0
        for end in _LINE_END.finditer(buffer):
            lines.append(buffer[start : end.start()])
            start = end.end()
        self._pending = buffer[start:]
        self._after_cr = self._after_cr or buffer.endswith(b"\r")
        return lines


class EventReader:
    """Reads an open stream in a daemon thread; `next(timeout)` gives events, then `END`."""

    def __init__(self, response: http.client.HTTPResponse) -> None:
        self._response = response
        self._events: queue.Queue[Event | None] = queue.Queue()
        self._closed = False
        threading.Thread(target=self._read, name="tasker-events", daemon=True).start()

    def next(self, timeout: float) -> Event | None | bool:
        """The next event, `END` once the stream ended, or False when none came within `timeout`."""
        try:
            return self._events.get(timeout=max(0.0, timeout))
        except queue.Empty:
            return False

    def close(self) -> None:
        """Stop reading: the connection is shut down, and the thread ends (it closes the answer:
        http.client is not for two threads at once)."""
        self._closed = True
        sock = _socket(self._response)
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _read(self) -> None:
        parser, splitter = FrameParser(), LineSplitter()
        try:
            while chunk := self._response.read1(CHUNK):
                for line in splitter.feed(chunk):
                    event = parser.feed(line.decode("utf-8", "replace"))
                    if event is not None:
                        self._events.put(event)
        except Exception as exc:  # a broken stream, whatever broke it, ends it; polling takes over
            if not self._closed:
                log.debug("the event stream broke: %s", exc)
        finally:
            self._response.close()
            self._events.put(END)


def _socket(response: http.client.HTTPResponse) -> socket.socket | None:
    raw = getattr(response.fp, "raw", None)
    return getattr(raw, "_sock", None)
