"""A webhook receiver for the tests: an HTTP server in a thread that keeps what it is sent,
answers with a chosen status, and can be stopped and started again on the same port."""

from __future__ import annotations

import dataclasses
import http.server
import json
import socket
import threading
import time

from tasker.webhooks import is_signed


@dataclasses.dataclass(frozen=True)
class Received:
    """One POST as the receiver got it."""

    path: str
    headers: dict[str, str]
    body: bytes
    time: float

    @property
    def event(self) -> dict:
        return json.loads(self.body)

    @property
    def delivery(self) -> str:
        return self.headers["x-tasker-delivery"]


class Receiver:
    """Answers every POST with `status` (and `location`, for a redirect) and keeps it."""

    def __init__(self, status: int = 200, location: str | None = None, delay: float = 0.0) -> None:
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        self.status = status
        self.location = location
        self.delay = delay
        self.received: list[Received] = []
        self._lock = threading.Lock()
        self._server: http.server.ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return "http://127.0.0.1:%d/hook" % self.port

    def start(self) -> Receiver:
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {name.lower(): value for name, value in self.headers.items()}
                with receiver._lock:
                    receiver.received.append(Received(self.path, headers, body, time.time()))
                time.sleep(receiver.delay)  # a receiver that takes its time to answer
                self.send_response(receiver.status)
                if receiver.location:
                    self.send_header("Location", receiver.location)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        server_class = type("Server", (http.server.ThreadingHTTPServer,), {"request_queue_size": 128})
        self._server = server_class(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def got(self) -> list[Received]:
        with self._lock:
            return list(self.received)

    def events(self, secret: str) -> list[Received]:
        """What was received, each checked: signed with `secret`, as JSON, recently."""
        got = self.got()
        for received in got:
            timestamp = received.headers["x-tasker-timestamp"]
            assert is_signed(secret, timestamp, received.body, received.headers["x-tasker-signature"]), received
            assert abs(int(timestamp) - received.time) < 30
            assert received.headers["content-type"] == "application/json"
            assert received.path == "/hook"
        return got
