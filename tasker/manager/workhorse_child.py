"""The work horse's child: runs a handler module's `handle_task`, one run at a time.

Started only by `tasker.manager.workhorse` (never by hand), as

    python -m tasker.manager.workhorse_child --manager-pid PID --module NAME --fd FD
                                             [--max-result BYTES] [--once]

It leads its own session and process group (the manager starts it so), dies with its manager
(PR_SET_PDEATHSIG), imports the handler module named on its command line (the manager takes
the name from the configuration; no message decides what is imported), then serves runs until
its manager closes the socket (or after one run, with `--once`).

The protocol: one JSON object a line, over the Unix socket on fd FD (never stdout/stderr).
  manager -> child  {"op": "run", "seq", "task_id", "identifier", "type", "payload", "endpoints",
                     "endpoint", "run", "attempts", "settings"};
                    {"op": "cancel", "seq"}: `task.cancelled()` of that run becomes true.
  child -> manager  {"op": "ready"} once the module is imported, or {"op": "error", "errmsg"} and exit;
                    {"op": "progress", "seq", "percent", "message"} from `taskResponse.progress()`;
                    {"op": "output", "seq", "data"}: text the run wrote or logged (see
                    `tasker.manager.workhorse_capture`), all of it before the result;
                    {"op": "result", "seq", "errnr", "errmsg", "traceback", "payload"}: the run's end.
A thread reads the manager's messages, so that a cancel arrives while the handler runs. The
result is checked here by `tasker.manager.handler_api.checked`, and its payload's JSON must fit
in `--max-result` bytes. Outside runs, stdout and stderr are the manager's; the root logger's
level is INFO unless the handler module sets another.
"""

from __future__ import annotations

import argparse
import ctypes
import dataclasses
import importlib
import io
import json
import logging
import os
import queue
import signal
import socket
import sys
import threading
import time
import traceback
from types import ModuleType
from typing import Any, BinaryIO, Callable, Iterator

from tasker.manager.handler_api import Task, TaskResponse, checked, failed, shorten
from tasker.manager.workhorse_capture import Capture, flush_stdio

PR_SET_PDEATHSIG = 1
PROGRESS_INTERVAL = 0.5
MAX_TRACEBACK = 50_000


def main(argv: list[str] | None = None) -> int:
    """Serve runs until the manager closes the socket; the exit status for `os._exit`."""
    args = _parse(argv)
    _die_with_manager(args.manager_pid)
    signal.pthread_sigmask(signal.SIG_SETMASK, ())  # an exec keeps the mask and ignored signals
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    channel = _Channel(socket.socket(fileno=args.fd))
    logging.getLogger().setLevel(logging.INFO)
    if isinstance(sys.stdout, io.TextIOWrapper):  # printed lines reach the output as they are printed
        sys.stdout.reconfigure(line_buffering=True)
    try:
        module = _load(args.module)
    except Exception as exc:
        channel.send({"op": "error", "errmsg": str(exc)})
        return 2
    channel.send({"op": "ready"})
    capture = Capture()
    for message, cancel in _Requests(channel):
        channel.send_text(_run(module, message, cancel, channel, capture, args.max_result))
        if args.once:
            break
    return 0


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="tasker.manager.workhorse_child")
    parser.add_argument("--manager-pid", type=int, required=True)
    parser.add_argument("--module", required=True)
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--max-result", type=int, default=4 * 2**20)
    parser.add_argument("--once", action="store_true")
    return parser.parse_args(argv)


def _die_with_manager(manager_pid: int) -> None:
    """Get SIGKILL when the manager (strictly: the thread that started us) ends; exit if it has."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != manager_pid:  # the manager died before the prctl: nobody would kill us
        os._exit(3)


def _load(name: str) -> ModuleType:
    try:
        module = importlib.import_module(name)
    except BaseException as exc:  # SystemExit or KeyboardInterrupt on import is the module's fault too
        raise ImportError("cannot import handler module %s: %s" % (name, _describe(exc))) from exc
    if not callable(getattr(module, "handle_task", None)):
        raise ImportError("handler module %s has no handle_task(task, taskResponse)" % name)
    return module


class _Channel:
    """This end of the socket: lines in; whole lines out, from any thread of the handler."""

    def __init__(self, sock: socket.socket) -> None:
        sock.set_inheritable(False)  # the handler's own subprocesses must not hold it open
        self._sock = sock
        self._lock = threading.Lock()

    def lines(self) -> BinaryIO:
        return self._sock.makefile("rb")

    def send(self, message: dict[str, Any]) -> None:
        self.send_text(json.dumps(message, allow_nan=False))

    def send_text(self, text: str) -> None:
        data = text.encode("utf-8") + b"\n"
        with self._lock:
            self._sock.sendall(data)


class _Requests:
    """The manager's messages, read by a thread of their own: runs are handed out one at a time
    (iterate), and a cancel sets the flag of its run at once, while the handler runs."""

    def __init__(self, channel: _Channel) -> None:
        self._queue: queue.SimpleQueue[tuple[dict[str, Any], threading.Event] | BaseException | None]
        self._queue = queue.SimpleQueue()
        self._current: tuple[int | None, threading.Event] = (None, threading.Event())
        threading.Thread(target=self._read, args=(channel,), name="manager-reader", daemon=True).start()

    def __iter__(self) -> Iterator[tuple[dict[str, Any], threading.Event]]:
        """Each run message with its cancel flag, until the manager closes the socket."""
        while (request := self._queue.get()) is not None:
            if isinstance(request, BaseException):
                raise request
            yield request

    def _read(self, channel: _Channel) -> None:
        try:
            for line in channel.lines():
                self._take(json.loads(line))
        except BaseException as exc:
            self._queue.put(exc)
        else:
            self._queue.put(None)

    def _take(self, message: dict[str, Any]) -> None:
        op = message.get("op")
        if op == "run":
            self._current = (message["seq"], threading.Event())
            self._queue.put((message, self._current[1]))
        elif op == "cancel":
            seq, flag = self._current
            if message.get("seq") == seq:  # else: a run that has ended already
                flag.set()
        else:
            raise ValueError("unknown message from the manager: %r" % op)


@dataclasses.dataclass
class RunTask(Task):
    """The task as `handle_task` sees it in a work horse: `Task`, the run number, the cancel flag."""

    run: int = 1
    _cancel: threading.Event = dataclasses.field(default_factory=threading.Event, init=False, repr=False, compare=False)

    def cancelled(self) -> bool:
        """Whether this run was cancelled: the handler should stop soon, cleanly (cheap to call often)."""
        return self._cancel.is_set()


@dataclasses.dataclass
class RunResponse(TaskResponse):
    """The taskResponse a handler fills in a work horse: `TaskResponse`, run number, progress."""

    run: int = 1

    def progress(self, percent: float, message: str | None = None) -> None:
        """Tell the manager how far the run is (0 to 100); calls within 0.5 s of the last are dropped."""
        report: Callable[[float, str | None], None] | None = getattr(self, "_report", None)
        if report is not None:
            report(percent, message)


class _Progress:
    def __init__(self, channel: _Channel, seq: int) -> None:
        self.channel, self.seq, self.last = channel, seq, float("-inf")

    def __call__(self, percent: float, message: str | None) -> None:
        percent = float(percent)
        if not 0 <= percent <= 100:
            raise ValueError("progress percent must be from 0 to 100, not %r" % percent)
        now = time.monotonic()
        if now - self.last < PROGRESS_INTERVAL:
            return
        self.last = now
        text = None if message is None else shorten(str(message))
        self.channel.send({"op": "progress", "seq": self.seq, "percent": percent, "message": text})


def _run(
    module: ModuleType,
    job: dict[str, Any],
    cancel: threading.Event,
    channel: _Channel,
    capture: Capture,
    max_result: int,
) -> str:
    """Run `handle_task` once, its output captured; the result line, already JSON."""
    task = RunTask(
        job["task_id"], job["identifier"], job["type"], job["payload"], job["endpoints"], job["settings"], job["run"]
    )
    task._cancel = cancel
    response = RunResponse(job["task_id"], job["endpoint"], job["attempts"], run=job["run"])
    response._report = _Progress(channel, job["seq"])
    capture.start(lambda text: channel.send({"op": "output", "seq": job["seq"], "data": text}))
    trace = None
    try:
        result = module.handle_task(task, response)
    except BaseException as exc:  # SystemExit and KeyboardInterrupt too: the handler failed
        trace = _shorten_traceback(exc)
        response = failed(response, _describe(exc))
    else:
        try:
            response = _answer(response, result)
        except BaseException as exc:  # an answer so odd that checking it raises
            response = failed(response, "cannot check the handler's answer: %s" % _describe(exc))
    finally:
        capture.finish()
    try:
        payload = json.dumps(response.payload, allow_nan=False)
    except BaseException as exc:  # changed by a thread of the handler after the check
        response, payload = failed(response, "handler set a payload that is not JSON: %s" % _describe(exc)), "null"
    if len(payload) > max_result:  # ASCII: characters are bytes
        message = "result payload of %d bytes is over manager.max_result (%d bytes)" % (len(payload), max_result)
        response, payload = failed(response, message), "null"
    head = {"op": "result", "seq": job["seq"], "errnr": response.errnr, "errmsg": response.errmsg, "traceback": trace}
    return '%s,"payload":%s}' % (json.dumps(head)[:-1], payload)


def _answer(response: RunResponse, result: Any) -> TaskResponse:
    if result is not None and result is not response:
        if not isinstance(result, TaskResponse):
            return failed(response, "handle_task returned %s, not the taskResponse" % type(result).__name__)
        response = result
    answer = checked(response)
    answer.errnr = int(answer.errnr)  # an IntEnum member, or an int subclass, goes out as a plain int
    return answer


def _describe(exc: BaseException) -> str:
    """`TypeName: message`, or `TypeName` alone when there is no message or it cannot be had."""
    name = type(exc).__name__
    try:
        text = str(exc)
    except BaseException as failure:
        return "%s (its message cannot be shown: str() raised %s)" % (name, type(failure).__name__)
    return "%s: %s" % (name, text) if text else name


def _shorten_traceback(exc: BaseException) -> str:
    try:
        text = "".join(traceback.format_exception(exc))
    except BaseException:
        text = "(the traceback cannot be formatted)"
    return text if len(text) <= MAX_TRACEBACK else "...\n" + text[-MAX_TRACEBACK:]


if __name__ == "__main__":
    try:
        status = main()
    except BaseException:
        traceback.print_exc()
        status = 1
    flush_stdio()
    os._exit(status)  # no waiting for threads a handler left behind
