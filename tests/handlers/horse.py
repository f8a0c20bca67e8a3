"""A handler module for the work horse's tests: `payload["do"]` says how to behave (see ACTIONS)."""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tasker.manager.handler_api import TaskResponse


class Bailout(BaseException):
    """Not an Exception: what a handler should never raise."""


class Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no message for you")


def _write_pid(task, pid: int) -> None:
    path = Path(task.payload["pidfile"])
    path.with_suffix(".tmp").write_text(str(pid))
    path.with_suffix(".tmp").rename(path)  # whole or not at all for the test reading it


def _spin() -> None:
    while True:
        pass


def _grandchild(task, response):
    child = subprocess.Popen(["sleep", "1000"])
    _write_pid(task, child.pid)
    _spin()


def _ignore_sigterm(task, response):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    response.progress(1, "ignoring SIGTERM")
    _spin()


def _progress_then_spin(task, response):
    response.progress(10, "started")
    _spin()


def _progress_burst(task, response):
    for percent in range(101):
        response.progress(percent, "at %d" % percent)


def _echo(task, response):
    response.payload = {
        "id": task.id,
        "identifier": task.identifier,
        "type": task.type,
        "endpoints": task.endpoints,
        "settings": task.settings,
        "run": task.run,
        "task_id": response.task_id,
        "endpoint": response.endpoint,
        "attempts": response.attempts,
        "response_run": response.run,
        "pid": os.getpid(),
        "pgid": os.getpgid(0),
    }


def _deploy(task, response):
    """Run a command the way a deploy does, and answer how it ended."""
    done = subprocess.run(["sleep", str(task.payload["seconds"])])
    response.payload = {"returncode": done.returncode}


def _print(task, response):
    print("to stdout from the handler")
    print("to stderr from the handler", file=sys.stderr)
    response.payload = "printed"


def _mixed(task, response):
    """Write every way a handler can: print, stderr, a subprocess, logging (DEBUG is below INFO)."""
    print("one")
    print("two", file=sys.stderr)
    subprocess.run(["echo", "three"], check=True)
    logging.getLogger("horse").info("four")
    logging.getLogger("horse").debug("not shown")
    os.write(2, b"five\n")
    response.payload = "printed"


def flood_block(number: int, size: int) -> str:
    """Block `number` of the "flood" action: lines of its number, `size` characters in all."""
    return ("%09d\n" % number) * (size // 10)


def _flood(task, response):
    for number in range(task.payload["blocks"]):
        print(flood_block(number, task.payload["block"]), end="")
    response.payload = "flooded"


FAKE_RESULT = '{"op": "result", "seq": %d, "errnr": 5, "errmsg": "fake", "traceback": null, "payload": "fake"}'


def _fake_messages(task, response):
    for seq in range(5):
        print(FAKE_RESULT % seq)
        print(FAKE_RESULT % seq, file=sys.stderr)
    response.payload = "real"


def _cooperative(task, response):
    """Wait until cancelled, then stop cleanly: succeed or fail as the payload says."""
    print("waiting")
    response.progress(1, "waiting")
    while not task.cancelled():
        time.sleep(0.005)
    print("stopping")
    if task.payload.get("then") == "succeed":
        response.payload = "finished"
    else:
        response.errnr, response.errmsg = 5, "stopped early"


def _stubborn(task, response):
    """Start a grandchild, then go on whatever cancelled() says."""
    child = subprocess.Popen(["sleep", "1000"])
    _write_pid(task, child.pid)
    print("stubborn")
    response.progress(1, "ignoring cancel")
    while True:
        time.sleep(0.01)


def _daemon(task, response):
    """Start a process that outlives the run with our stdout, and writes to it later."""
    script = "echo early; sleep %s; echo late && touch %s" % (task.payload["seconds"], task.payload["done"])
    subprocess.Popen(["sh", "-c", script])


def _raising(make):
    def handle(task, response):
        raise make(response)

    return handle


def _set(name, value):
    return lambda task, response: setattr(response, name, value)


ACTIONS = {
    "return": lambda task, response: setattr(response, "payload", task.payload.get("payload")),
    "echo": _echo,
    "errnr": lambda task, response: (setattr(response, "errnr", 32), setattr(response, "errmsg", "could not backup!")),
    "raise": _raising(lambda response: RuntimeError("disk full on %s" % response.endpoint)),
    "unprintable": _raising(lambda response: Unprintable()),
    "bailout": _raising(lambda response: Bailout("no way")),
    "interrupt": _raising(lambda response: KeyboardInterrupt()),
    "exit": lambda task, response: sys.exit(3),
    "os_exit": lambda task, response: os._exit(3),
    "segfault": lambda task, response: ctypes.string_at(0),
    "sigkill": lambda task, response: os.kill(os.getpid(), signal.SIGKILL),
    "loop": lambda task, response: _spin(),
    "sleep": lambda task, response: time.sleep(float(task.payload["seconds"])),
    "progress_loop": _progress_then_spin,
    "progress_burst": _progress_burst,
    "progress_bad": lambda task, response: response.progress(150),
    "ignore_sigterm": _ignore_sigterm,
    "grandchild": _grandchild,
    "deploy": _deploy,
    "print": _print,
    "mixed": _mixed,
    "flood": _flood,
    "fake_messages": _fake_messages,
    "cooperative": _cooperative,
    "stubborn": _stubborn,
    "daemon": _daemon,
    "cancelled_flag": lambda task, response: setattr(response, "payload", task.cancelled()),
    "not_json": _set("payload", {"a set": {1, 2}}),
    "nan": _set("payload", float("nan")),
    "big_errnr": _set("errnr", 2**40),
    "big": lambda task, response: setattr(response, "payload", "x" * int(task.payload["size"])),
    "wrong_return": lambda task, response: 42,
    "new_response": lambda task, response: TaskResponse(response.task_id, response.endpoint, 1, payload="new"),
}


def handle_task(task, taskResponse):
    """Do what the payload says."""
    result = ACTIONS[task.payload["do"]](task, taskResponse)
    if task.payload["do"] in ("wrong_return", "new_response"):
        return result
    return taskResponse
