"""What the integration and end-to-end tests share: HTTP calls, waiting, real processes."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import ssl
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / "bin"


def unique(prefix: str = "t") -> str:
    """A fresh task identifier."""
    return "%s-%s" % (prefix, uuid.uuid4().hex[:16])


def alive(pid: int) -> bool:
    """Whether process `pid` exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path("/proc/%d/status" % pid)
    return not (status.exists() and "zombie" in status.read_text())


def wait_for(condition: Callable[[], Any], timeout: float = 30.0, interval: float = 0.1, what: str = "") -> Any:
    """Poll until `condition()` is truthy and return it; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %ss waiting for %s" % (timeout, what or condition))
        time.sleep(interval)


class Answer:
    """An HTTP answer: status, headers and the decoded JSON body (None if not JSON)."""

    def __init__(self, status: int, headers: dict[str, str], raw: bytes) -> None:
        self.status, self.headers, self.raw = status, headers, raw
        try:
            self.json = json.loads(raw) if raw else None
        except ValueError:
            self.json = None

    def __repr__(self) -> str:
        return "<Answer %d %r>" % (self.status, self.raw[:300])


class Api:
    """A client of one running API process (over TLS when given a CA file; with a bearer token)."""

    def __init__(self, port: int, ca_file: str | None = None, token: str | None = None) -> None:
        self.port = port
        self.ca_file = ca_file
        self.token = token

    def request(
        self, method: str, path: str, body: Any = None, headers: dict | None = None, raw: bytes | None = None
    ) -> Answer:
        """Send one request; `body` is sent as JSON unless `raw` bytes are given."""
        headers = dict(headers or {})
        if self.token:
            headers.setdefault("Authorization", "Bearer " + self.token)
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
            headers.setdefault("Content-Type", "application/json")
        if self.ca_file:
            context = ssl.create_default_context(cafile=self.ca_file)
            connection = http.client.HTTPSConnection("localhost", self.port, timeout=30, context=context)
        else:
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            connection.request(method, path, body=data, headers=headers)
            response = connection.getresponse()
            return Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
        finally:
            connection.close()

    def post(self, task_type: str, body: Any, **kwargs: Any) -> Answer:
        return self.request("POST", "/" + task_type, body, **kwargs)

    def get(self, task_type: str, identifier: str) -> Answer:
        return self.request("GET", "/%s/%s" % (task_type, identifier))

    def healthy(self) -> bool:
        try:
            return self.request("GET", "/health").status == 200
        except OSError:
            return False

    def wait_status(self, task_type: str, identifier: str, statuses: tuple[str, ...], timeout: float = 30) -> dict:
        """Wait until the task is in one of `statuses`; return the GET body."""

        def reached():
            answer = self.get(task_type, identifier)
            return answer.json if answer.status == 200 and answer.json["task"]["status"] in statuses else None

        return wait_for(reached, timeout, 0.1, "task %s to be %s" % (identifier, "/".join(statuses)))

    def response(self, task_type: str, identifier: str, endpoint: str) -> dict | None:
        """One endpoint's response to a task, or None."""
        answer = self.get(task_type, identifier)
        if answer.status != 200:
            return None
        return next((r for r in answer.json["taskResponseList"] if r["endpoint"] == endpoint), None)

    def wait_state(
        self, task_type: str, identifier: str, endpoint: str, states: tuple = ("running",), timeout: float = 30
    ) -> dict:
        """Wait until one endpoint's response is in one of `states`; return it."""

        def reached():
            response = self.response(task_type, identifier, endpoint)
            return response if response is not None and response["state"] in states else None

        return wait_for(reached, timeout, 0.05, "%s on %s to be %s" % (identifier, endpoint, "/".join(states)))


class Process:
    """One tasker process started from bin/, its output in a log file."""

    def __init__(self, args: list[str], env: dict[str, str], log_path: Path) -> None:
        self.args = args
        self.log_path = log_path
        self._log = open(log_path, "ab")
        self.popen = subprocess.Popen(args, cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_log(self, text: str, timeout: float = 30) -> None:
        """Wait until the process has logged `text`."""
        wait_for(lambda: text in self.log(), timeout, 0.1, "%r in %s" % (text, self.log_path.name))

    def signal(self, signum: int) -> None:
        self.popen.send_signal(signum)

    def stop(self, timeout: float = 20) -> int | None:
        """SIGTERM, then SIGKILL if it does not exit; return the exit status."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self._log.close()
        return self.popen.returncode


class Cluster:
    """Starts API and manager processes of the test run mode and stops them all at the end."""

    def __init__(self, log_dir: Path, env: dict[str, str]) -> None:
        self.log_dir = log_dir
        self.env = env
        self.processes: list[Process] = []

    def _start(self, name: str, args: list[str], env: dict[str, str] | None) -> Process:
        process = Process(args, dict(self.env, **(env or {})), self.log_dir / ("%s.log" % name))
        self.processes.append(process)
        return process

    def api(self, port: int, env: dict[str, str] | None = None, **client: Any) -> tuple[Process, Api]:
        """Start bin/api on `port` and wait until it answers; `client` options go to `Api`."""
        process = self._start("api-%d" % port, [str(BIN / "api"), "--mode", "test", "--port", str(port)], env)
        api = Api(port, **client)
        wait_for(lambda: api.healthy() or process.popen.poll() is not None, 30, 0.1, "the API on port %d" % port)
        assert process.popen.poll() is None, "the API exited; its log is %s" % process.log_path
        return process, api

    def manager(
        self, endpoint: str, task_type: str = "worker", env: dict[str, str] | None = None, wait: bool = True
    ) -> Process:
        """Start bin/manager and (by default) wait until it consumes its queue."""
        args = [str(BIN / "manager"), "--mode", "test", "--endpoint", endpoint, "--tasktype", task_type]
        process = self._start("manager-%s-%s-%s" % (task_type, endpoint, len(self.processes)), args, env)
        if wait:
            environ = dict(self.env, **(env or {}))
            queue = "%s.%s.%s" % (environ.get("TASKER_TEST_EXCHANGE", "tasker"), task_type, endpoint)
            vhost = environ.get("TASKER_TEST_VHOST", "tasker_test")
            wait_for(lambda: consumers(vhost, queue) > 0, 30, 0.1, "%s to consume its queue" % endpoint)
        return process

    def stop_all(self) -> None:
        for process in reversed(self.processes):
            process.stop()


def consumers(vhost: str, queue: str) -> int:
    """How many consumers the local RabbitMQ counts on a queue (0 when it does not exist)."""
    return _queue_figure(vhost, queue, "consumer_count")


def queue_depth(vhost: str, queue: str) -> int:
    """How many messages wait in a queue, not delivered to a consumer (0 when it does not exist)."""
    return _queue_figure(vhost, queue, "message_count")


def _queue_figure(vhost: str, queue: str, figure: str) -> int:
    import pika

    parameters = pika.ConnectionParameters("127.0.0.1", 5672, vhost, pika.PlainCredentials("guest", "guest"))
    connection = pika.BlockingConnection(parameters)
    try:
        return getattr(connection.channel().queue_declare(queue, passive=True).method, figure)
    except pika.exceptions.ChannelClosedByBroker:
        return 0
    finally:
        if connection.is_open:
            connection.close()


def process_env(**overrides: str) -> dict[str, str]:
    """The environment of processes in the test run mode."""
    env = dict(os.environ, TASKER_MODE="test", PYTHONUNBUFFERED="1")
    env.update(overrides)
    return env


class TcpProxy:
    """A TCP forwarder from a local port to a service, which a test can cut and restore.

    It stands in for a broker or database that goes away: `stop()` closes the listening
    socket and every connection through it; `start()` listens again on the same port.
    """

    def __init__(self, target_port: int, tls: ssl.SSLContext | None = None) -> None:
        self.target_port = target_port
        self.tls = tls
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        self._listener: socket.socket | None = None
        self._sockets: list[socket.socket] = []
        self.accepted = 0  # connections accepted so far
        self._lock = threading.Lock()

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def stop(self) -> None:
        with self._lock:
            sockets, self._sockets = self._sockets, []
            listener, self._listener = self._listener, None
        for sock in [listener, *sockets]:
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            self.accepted += 1
            try:
                if self.tls is not None:  # this side speaks TLS, as a broker with TLS does
                    client.settimeout(10)
                    client = self.tls.wrap_socket(client, server_side=True)
                    client.settimeout(None)
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except (OSError, ssl.SSLError):
                client.close()
                continue
            with self._lock:
                self._sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
