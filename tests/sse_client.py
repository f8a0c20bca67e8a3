"""A Server-Sent Events client for the tests: reads a `GET /events` stream in a thread."""

from __future__ import annotations

import http.client
import json
import queue
import socket
import threading
import time
from typing import Callable


class Frame(dict):
    """One block of the stream: its fields (`id`, `event`, `data`) and `comment`, as text."""

    @property
    def kind(self) -> str | None:
        return self.get("event")

    @property
    def data(self) -> dict:
        return json.loads(self["data"])

    @property
    def id(self) -> int:
        return int(self["id"])


class EventStreamClient:
    """Opens `/events<query>` on 127.0.0.1:`port`; frames come in `frames` as they are read.

    `status`, `headers` and (not 200) `body` tell the answer; `ended` is set when the stream
    ended, `clean` says whether it ended as a whole HTTP answer (not cut off).
    """

    def __init__(self, port: int, query: str = "", headers: dict[str, str] | None = None) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.connection.request("GET", "/events" + query, headers=headers or {})
        self.sock = self.connection.sock
        self.response = self.connection.getresponse()
        self.status = self.response.status
        self.headers = {name.lower(): value for name, value in self.response.getheaders()}
        self.frames: queue.Queue[Frame] = queue.Queue()
        self.ended = threading.Event()
        self.clean = False
        self.body = b""
        if self.status == 200:
            threading.Thread(target=self._read, daemon=True).start()
        else:
            self.body = self.response.read()
            self.ended.set()

    def error(self) -> dict:
        """The JSON error body of an answer that is not a stream."""
        return json.loads(self.body)

    def next(self, timeout: float = 30) -> Frame:
        """The next frame (comments included); AssertionError if none comes in time."""
        try:
            return self.frames.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError("no frame within %ss" % timeout) from None

    def until(self, last: Callable[[Frame], bool], timeout: float = 30) -> list[Frame]:
        """The events (comments left out) up to and including the first for which `last` is true."""
        deadline = time.monotonic() + timeout
        found: list[Frame] = []
        while True:
            frame = self.next(max(0.01, deadline - time.monotonic()))
            if "comment" in frame and len(frame) == 1:
                continue
            found.append(frame)
            if last(frame):
                return found

    def close(self) -> None:
        """Go away: the API sees the connection closed."""
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.ended.wait(10)  # the reader sees the end first: http.client is not for two threads at once
        self.connection.close()

    def __enter__(self) -> EventStreamClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _read(self) -> None:
        frame = Frame()
        try:
            while line := self.response.readline():
                text = line.decode().rstrip("\r\n")
                if not text:
                    if frame:
                        self.frames.put(frame)
                    frame = Frame()
                elif text.startswith(":"):
                    frame["comment"] = text[1:].strip()
                else:
                    name, _, value = text.partition(":")
                    frame[name] = value[1:] if value.startswith(" ") else value
            self.clean = True
        except (OSError, ValueError, http.client.HTTPException):
            pass
        finally:
            self.ended.set()


def settled_event(identifier: str) -> Callable[[Frame], bool]:
    """Whether a frame is the `task` event that says the task `identifier` settled."""
    return lambda frame: frame.kind == "task" and frame.data["identifier"] == identifier and frame.data["settled"]
