"""One run in a work horse's child: its messages, its output, its time limit, its cancel, its
stop by signals, its outcome."""

from __future__ import annotations

import dataclasses
import logging
import signal
import threading
import time
from typing import Any, Callable

from tasker.manager.handler_api import ERRNR_MAX, ERRNR_MIN
from tasker.manager.workhorse_job import NO_OUTPUT, Job, Outcome, RunState
from tasker.manager.workhorse_output import OutputKeeper
from tasker.manager.workhorse_process import Child, ProtocolError, describe_exit

CANCELLED = "cancelled"

log = logging.getLogger(__name__)


class Run:
    """The run in hand: `advance()` it until it returns the outcome.

    `request_stop()` and `request_cancel()` may come from another thread (under `lock`, which
    `advance()` takes too), and the `output` keeper is thread-safe; the rest belongs to the
    thread that drives the work horse.
    """

    def __init__(
        self,
        job: Job,
        child: Child,
        seq: int,
        grace: float,
        lock: threading.Lock,
        on_progress: Callable[[float, str | None], None] | None,
        output: OutputKeeper,
    ) -> None:
        self.job, self.child, self.seq, self.grace = job, child, seq, grace
        self.lock = lock
        self.on_progress = on_progress
        self.output = output
        self.deadline = None if job.timeout is None else time.monotonic() + job.timeout
        self.stop: Outcome | None = None  # why it is being stopped: the first reason given
        self.kill = False  # SIGKILL at once, no grace
        self.signalled: int | None = None  # the last signal its group got
        self.kill_at: float | None = None  # when SIGKILL follows the SIGTERM
        self.cancel_at: float | None = None  # a cancel was asked for: stop it by then
        self.cancel_sent = False  # the child was told (task.cancelled() is true)

    def next_check(self) -> float | None:
        """The monotonic time when `advance()` must run even if nothing arrives."""
        if self.kill_at is not None:
            return self.kill_at
        times = [at for at in (self.deadline, self.cancel_at) if at is not None]
        return min(times) if times else None

    def request_cancel(self, grace: float) -> bool:
        """Have the handler told to stop, and stopped after `grace` seconds; the caller holds
        `lock`. False if it is being cancelled or stopped already (a shorter grace still counts)."""
        if self.stop is not None:
            return False
        at = time.monotonic() + grace
        first = self.cancel_at is None
        if first or at < self.cancel_at:
            self.cancel_at = at
        return first

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
        """Take in what the child sent, enforce the time limit, a cancel and a stop, without
        blocking: the outcome, with the run's output, if the run has ended (a child that exited
        is reaped), else None."""
        outcome = self._advance()
        if outcome is None:
            return None
        output = self.output.end()
        return outcome if output is NO_OUTPUT else dataclasses.replace(outcome, output=output)

    def _advance(self) -> Outcome | None:
        child = self.child
        self._tell_cancel()
        child.flush()
        exited = child.exited()  # before reading: all it sent before it exited is readable
        try:
            messages = child.receive(everything=exited)
        except ProtocolError as exc:
            self._request(Outcome.failed("handler process broke the protocol: %s" % exc), kill=True)
            messages = []
        for message in messages:
            outcome = self._take(message)
            if outcome is not None:
                return outcome
        if exited:
            return self._ended()
        self._enforce(time.monotonic())
        return None

    def _tell_cancel(self) -> None:
        """Send the child a cancel asked for since the last call."""
        if not self.cancel_sent and self.signalled is None:
            with self.lock:
                asked = self.cancel_at is not None
            if asked:
                self.child.send({"op": "cancel", "seq": self.seq})
                self.cancel_sent = True

    def _enforce(self, now: float) -> None:
        """Stop the run at its time limit or at the end of a cancel's grace; signal a stop."""
        with self.lock:
            cancel_at = self.cancel_at
        if cancel_at is not None and now >= cancel_at:
            self._request(Outcome.failed(CANCELLED, RunState.CANCELLED), kill=False)
        if self.deadline is not None and now >= self.deadline:
            timed_out = Outcome.failed("timed out after %g s" % self.job.timeout, RunState.TIMED_OUT)
            self._request(timed_out if cancel_at is None else Outcome.failed(CANCELLED, RunState.CANCELLED), kill=False)
        with self.lock:
            stop, kill = self.stop, self.kill
        if stop is not None and self.signalled != signal.SIGKILL:
            if self.signalled is None or kill or now >= self.kill_at:
                self._signal(stop, kill, now)

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
        if op == "output":  # even while it is being stopped: its last words
            if isinstance(message.get("data"), str):
                self.output.add(message["data"])
            return None
        if self.signalled is not None:
            return None  # being stopped: too late for the rest
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
            return self._answered(errnr, errmsg, message.get("payload"))
        return None

    def _answered(self, errnr: int, errmsg: str | None, payload: Any) -> Outcome:
        """The handler's own answer; a failure after a cancel was asked for is a cancel."""
        if errnr == 0:
            return Outcome(RunState.SUCCEEDED, errnr, errmsg, payload)
        with self.lock:
            cancelled = self.cancel_at is not None
        if not cancelled:
            return Outcome(RunState.FAILED, errnr, errmsg, payload)
        why = errmsg if errmsg else "errnr %d" % errnr
        return dataclasses.replace(Outcome.failed("%s: %s" % (CANCELLED, why), RunState.CANCELLED), payload=payload)

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
