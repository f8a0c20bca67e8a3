"""One work horse child process as its manager sees it: start, talk, signal, reap.

The child is `python -m tasker.manager.workhorse_child` (see there for the protocol), started
with subprocess (fork and exec: never a bare fork of the threaded manager), leading its own
session and process group, so its group id is its pid. The manager holds:
- its end of a Unix socket pair (the child's end is passed as a dedicated fd): newline-
  delimited JSON both ways, non-blocking on this side, watched by the work horse's epoll;
- a pidfd, readable once the child has exited, without reaping it: the child stays a
  zombie until `finish()`, so its pid, hence its group id, cannot be reused while the
  manager still signals the group.

The child's stdin is /dev/null; its stdout and stderr are the manager's, except during a run:
then the child captures them and sends them as output messages on the socket. However much a
run writes, `receive()` takes about READ_SIZE bytes a call, so a driver that calls it whenever
the socket is readable is never held up for long.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
from typing import Any

from tasker import jsontext
from tasker.errors import HandlerModuleError, WorkHorseError

CHILD_MODULE = "tasker.manager.workhorse_child"
MESSAGE_SLACK = 2**20  # room in a result message besides its payload: errmsg, traceback
READ_SIZE = 2**20


class ProtocolError(Exception):
    """The child sent something that is not a message of the protocol."""


class Child:
    """A started child process and the manager's ends of its socket and pidfd."""

    def __init__(self, module_name: str, max_result: int, once: bool, epoll: select.epoll) -> None:
        """Start the child; its socket and pidfd are watched by `epoll` until `finish()`."""
        ours, theirs = socket.socketpair()
        command = [sys.executable, "-m", CHILD_MODULE, "--manager-pid", str(os.getpid())]
        command += ["--module", module_name, "--fd", str(theirs.fileno()), "--max-result", str(max_result)]
        if once:
            command.append("--once")
        try:
            self.proc = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, pass_fds=(theirs.fileno(),), start_new_session=True
            )
        except OSError as exc:
            ours.close()
            raise WorkHorseError("cannot start a handler process for %s: %s" % (module_name, exc)) from exc
        finally:
            theirs.close()
        self.module_name = module_name
        self.pid = self.pgid = self.proc.pid
        try:
            self.pidfd = os.pidfd_open(self.pid)
        except OSError as exc:
            self.signal(signal.SIGKILL)
            self.proc.wait()
            ours.close()
            raise WorkHorseError("cannot watch the handler process of %s: %s" % (module_name, exc)) from exc
        ours.setblocking(False)
        self.sock = ours
        self.limit = max_result + MESSAGE_SLACK
        self._in = bytearray()
        self._out = bytearray()
        self._eof = False
        self._watching_out = False
        self._epoll = epoll
        epoll.register(self.sock.fileno(), select.EPOLLIN)
        epoll.register(self.pidfd, select.EPOLLIN)
        self.returncode: int | None = None

    def send(self, message: dict[str, Any]) -> None:
        """Queue a message; it goes out now as far as the socket takes it, the rest in `flush()`."""
        self._out += jsontext.dumps(message).encode("utf-8") + b"\n"
        self.flush()

    def wait_ready(self, timeout: float) -> None:
        """Wait until the child has imported its module. Raises HandlerModuleError if it cannot,
        WorkHorseError if the child exits or is not ready within `timeout`, ProtocolError."""
        deadline = time.monotonic() + timeout
        poller = select.poll()
        poller.register(self.pidfd, select.POLLIN)
        poller.register(self.sock, select.POLLIN)
        watching_sock = True
        while True:
            exited = self.exited()
            for message in self.receive(everything=exited):
                if message["op"] == "ready":
                    return
                if message["op"] == "error":
                    raise HandlerModuleError(str(message.get("errmsg")))
            if exited:
                why = describe_exit(self.finish())
                raise WorkHorseError("cannot start the handler process of %s: %s" % (self.module_name, why))
            if self._eof and watching_sock:
                poller.unregister(self.sock)  # closed: only the exit can come
                watching_sock = False
            left = deadline - time.monotonic()
            if left <= 0:
                raise WorkHorseError("handler process of %s not ready after %g s" % (self.module_name, timeout))
            poller.poll(left * 1000)

    def exited(self, timeout: float = 0.0) -> bool:
        """Whether the child has exited, waiting up to `timeout` seconds (it is not reaped: see `finish()`)."""
        if self.returncode is not None:
            return True
        poller = select.poll()
        poller.register(self.pidfd, select.POLLIN)
        return bool(poller.poll(timeout * 1000))

    def alive(self) -> bool:
        """Whether the child is running still."""
        return not self.exited()

    def receive(self, everything: bool = False) -> list[dict[str, Any]]:
        """The whole messages that have arrived, from about READ_SIZE bytes, or from all there is if
        `everything` (a child that exited sends no more); raises ProtocolError for a line that is
        not a message."""
        received = 0
        while not self._eof and (everything or received < READ_SIZE):
            try:
                data = self.sock.recv(READ_SIZE)
            except BlockingIOError:
                break
            except OSError:
                data = b""
            if not data:  # the child closed its end: only its exit can come now
                self._eof = True
                self._epoll.unregister(self.sock.fileno())
                break
            self._in += data
            received += len(data)
            if len(self._in) > self.limit and b"\n" not in data:
                break  # a line too long, unless an earlier part ends: judged below
        *lines, rest = bytes(self._in).split(b"\n")
        if len(rest) > self.limit:
            raise ProtocolError("a message of over %d bytes" % self.limit)
        self._in = bytearray(rest)
        return [_decode(line) for line in lines]

    def signal(self, signum: int) -> None:
        """Send `signum` to the child's whole process group."""
        try:
            os.killpg(self.pgid, signum)
        except ProcessLookupError:
            pass

    def finish(self) -> int:
        """SIGKILL what is left of the group, reap the child, close all: its exit status."""
        if self.returncode is None:
            self.signal(signal.SIGKILL)
            self.returncode = self.proc.wait()
            if not self._eof:
                self._epoll.unregister(self.sock.fileno())
            self._epoll.unregister(self.pidfd)
            self.sock.close()
            os.close(self.pidfd)
        return self.returncode

    def end(self, grace: float) -> int:
        """End an idle child: close the socket (it exits), then `finish()` after `grace` at most."""
        if self.returncode is None:
            try:
                self.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self.exited(grace)
        return self.finish()

    def flush(self) -> None:
        """Send what the socket takes of the queued messages (watching for room if any are left)."""
        while self._out:
            try:
                sent = self.sock.send(self._out)
            except BlockingIOError:
                break
            except OSError:  # the child is gone or closed its end; its exit will tell
                self._out.clear()
                break
            del self._out[:sent]
        if not self._eof and self._watching_out != bool(self._out):
            self._watching_out = bool(self._out)
            self._epoll.modify(self.sock.fileno(), select.EPOLLIN | (select.EPOLLOUT if self._out else 0))


def _decode(line: bytes) -> dict[str, Any]:
    try:
        message = json.loads(line)
    except ValueError as exc:
        raise ProtocolError("a line that is not JSON: %s" % exc) from None
    if not isinstance(message, dict) or not isinstance(message.get("op"), str):
        raise ProtocolError("a message without an op: %.200r" % (message,))
    return message


def describe_exit(returncode: int) -> str:
    """What happened to a child that ended without answering, as an errmsg."""
    if returncode >= 0:
        return "handler process exited with status %d" % returncode
    number = -returncode
    try:
        name = signal.Signals(number).name
    except ValueError:
        name = "unknown signal"
    if number == signal.SIGKILL:
        return "handler process was killed: signal %d (%s)" % (number, name)
    return "handler process died: signal %d (%s)" % (number, name)


def kill_group(pgid: int) -> bool:
    """SIGKILL a process group that a work horse child led, left by an earlier manager.

    Checks first, through /proc, that the group is one: its leader, if alive, runs
    tasker.manager.workhorse_child, and every member is in the session of that id (a child
    leads its own session). It cannot tell whose child it is: a manager must not pass the
    group of its own current child (`WorkHorse.pgid`). True if the group got the signal,
    False if it was gone or is not a work horse's.
    """
    if pgid <= 1 or pgid == os.getpgid(0):
        raise ValueError("not a process group to kill: %d" % pgid)
    members = _group_members(pgid)
    if not members or any(session != pgid for session in members.values()):
        return False
    if pgid in members and not _zombie(pgid) and CHILD_MODULE.encode() not in _cmdline(pgid):
        return False  # a live leader that is not a work horse child: not ours
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        return False
    return True


def _group_members(pgid: int) -> dict[int, int]:
    """The processes of a group: pid -> session id."""
    members = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name, "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue  # ended meanwhile
        if int(fields[2]) == pgid:  # after ")": state, ppid, pgrp, session
            members[int(name)] = int(fields[3])
    return members


def _zombie(pid: int) -> bool:
    """Whether the process has exited and is not reaped (its command line is gone): a child
    whose manager died stays so until init reaps it."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as stat:
            return stat.read().rsplit(b")", 1)[1].split()[0] == b"Z"
    except OSError:
        return False


def _cmdline(pid: int) -> bytes:
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as cmdline:
            return cmdline.read()
    except OSError:
        return b""
