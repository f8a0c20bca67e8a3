"""One run in a work horse's child: its messages, its time limit, its stop by signals, its outcome."""

from __future__ import annotations

import logging
import signal
import threading
import time
from typing import Any, Callable

from tasker.manager.handler_api import ERRNR_MAX, ERRNR_MIN
from tasker.manager.workhorse_job import Job, Outcome, RunState
from tasker.manager.workhorse_process import Child, ProtocolError, describe_exit

log = logging.getLogger(__name__)


class Run:
    """The run in hand: `advance()` it until it returns the outcome.

    `request_stop()` may come from another thread (under `lock`, which `advance()` takes too);
    the rest belongs to the thread that drives the work horse.
    """

    def __init__(
        self,
        job: Job,
        child: Child,
        seq: int,
        grace: float,
        lock: threading.Lock,
        on_progress: Callable[[float, str | None], None] | None,
    ) -> None:
        self.job, self.child, self.seq, self.grace = job, child, seq, grace
        self.lock = lock
        self.on_progress = on_progress
        self.deadline = None if job.timeout is None else time.monotonic() + job.timeout
        self.stop: Outcome | None = None  # why it is being stopped: the first reason given
        self.kill = False  # SIGKILL at once, no grace
        self.signalled: int | None = None  # the last signal its group got
        self.kill_at: float | None = None  # when SIGKILL follows the SIGTERM

    def next_check(self) -> float | None:
        """The monotonic time when `advance()` must run even if nothing arrives."""
        return self.kill_at if self.kill_at is not None else self.deadline

    def request_stop(self, outcome: Outcome, kill: bool) -> bool:
        """Have the run stopped (SIGKILL at once if `kill`); the caller holds `lock`. Whether
        `outcome` is the one it will end with (False: it is being stopped already)."""
        if self.stop is not None and not kill:
            return False
        first = self.stop is None
        if first:
            self.stop = outcome
        self.kill = self.kill or kill
        return first

    def advance(self) -> Outcome | None:
        """Take in what the child sent, enforce the time limit and a stop, without blocking:
        the outcome if the run has ended (a child that exited is reaped), else None."""
        child = self.child
        child.flush()
        exited = child.exited()  # before reading: all it sent before it exited is readable
        try:
            messages = child.receive()
        except ProtocolError as exc:
            self._request(Outcome.failed("handler process broke the protocol: %s" % exc), kill=True)
            messages = []
        for message in messages if self.signalled is None else ():  # stopping: too late for them
            outcome = self._take(message)
            if outcome is not None:
                return outcome
        if exited:
            return self._ended()
        now = time.monotonic()
        if self.deadline is not None and now >= self.deadline:
            self._request(Outcome.failed("timed out after %g s" % self.job.timeout, RunState.TIMED_OUT), kill=False)
        with self.lock:
            stop, kill = self.stop, self.kill
        if stop is not None and self.signalled != signal.SIGKILL:
            if self.signalled is None or kill or now >= self.kill_at:
                self._signal(stop, kill, now)
        return None

    def _request(self, outcome: Outcome, kill: bool) -> None:
        with self.lock:
            self.request_stop(outcome, kill)

    def _signal(self, stop: Outcome, kill: bool, now: float) -> None:
        """SIGTERM the group, or SIGKILL it when told to kill or the grace is over."""
        why = stop.errmsg if self.signalled is None else "still running after SIGTERM"
        self.signalled = signal.SIGKILL if kill or self.signalled is not None else signal.SIGTERM
        self.kill_at = now + self.grace if self.signalled == signal.SIGTERM else None
        self.deadline = None
        log.warning(
            "task %s on %s: %s; sending %s to process group %d",
            self.job.identifier,
            self.job.endpoint,
            why,
            signal.Signals(self.signalled).name,
            self.child.pgid,
        )
        self.child.signal(self.signalled)

    def _take(self, message: dict[str, Any]) -> Outcome | None:
        """Act on one message of the child; the outcome if the run has ended."""
        op, job = message["op"], self.job
        if op == "error":  # the module cannot be imported; the child exits
            log.error("task %s on %s: %s", job.identifier, job.endpoint, message.get("errmsg"))
            self.child.finish()
            return Outcome.failed(str(message.get("errmsg")))
        if message.get("seq") != self.seq:
            return None  # "ready", or from a thread a handler left running after an earlier run
        if op == "progress" and self.on_progress is not None:
            try:
                self.on_progress(float(message["percent"]), message.get("message"))
            except Exception:
                log.exception("task %s on %s: on_progress failed", job.identifier, job.endpoint)
        elif op == "result":
            errnr, errmsg = message.get("errnr"), message.get("errmsg")
            if message.get("traceback"):
                log.error("task %s on %s: handler raised\n%s", job.identifier, job.endpoint, message["traceback"])
            if type(errnr) is not int or not ERRNR_MIN <= errnr <= ERRNR_MAX or not isinstance(errmsg, str | None):
                return Outcome.failed("handler process sent a malformed result: %.200r" % (message,))
            state = RunState.SUCCEEDED if errnr == 0 else RunState.FAILED
            return Outcome(state, errnr, errmsg, message.get("payload"))
        return None

    def _ended(self) -> Outcome:
        """The child exited during the run: stopped on purpose, or died on its own."""
        returncode = self.child.finish()
        with self.lock:
            stop = self.stop
        if stop is not None:
            return stop
        errmsg = describe_exit(returncode)
        log.error("task %s on %s: %s", self.job.identifier, self.job.endpoint, errmsg)
        return Outcome.failed(errmsg)
