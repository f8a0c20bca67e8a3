"""A work horse that runs a Python function in a thread, for unit tests of the manager's logic."""

from __future__ import annotations

import os
import threading
from typing import Callable

from tasker.manager.workhorse import Job, Outcome, RunOutput, RunState


def succeed(job: Job) -> Outcome:
    """The default handler: answers the task's payload."""
    return Outcome(RunState.SUCCEEDED, 0, None, {"echo": job.payload.value()})


def gated(gate: threading.Event) -> Callable[[Job], Outcome]:
    """A handler that returns once `gate` is set."""

    def handler(job: Job) -> Outcome:
        gate.wait(10)
        return Outcome(RunState.SUCCEEDED, 0, None, None)

    return handler


class StubHorse:
    """Runs `handler(job)` in a thread; records every job it was given."""

    def __init__(self, handler: Callable[[Job], Outcome] = succeed) -> None:
        self.handler = handler
        self.jobs: list[Job] = []
        self.pgid: int | None = None
        self.closed = False
        self._outcome: Outcome | None = None
        self._lock = threading.Lock()
        self._read, self._write = os.pipe()
        os.set_blocking(self._read, False)

    def begin(self, job: Job) -> int:
        self.jobs.append(job)
        self.pgid = 4242
        threading.Thread(target=self._run, args=(job,), daemon=True).start()
        return self.pgid

    def _run(self, job: Job) -> None:
        try:
            outcome = self.handler(job)
        except Exception as exc:
            outcome = Outcome.failed("%s: %s" % (type(exc).__name__, exc))
        with self._lock:
            self._outcome = outcome
        os.write(self._write, b"x")

    def fileno(self) -> int:
        return self._read

    def next_check(self) -> float | None:
        return None

    def collect(self) -> Outcome | None:
        with self._lock:
            outcome, self._outcome = self._outcome, None
        if outcome is not None:
            try:
                os.read(self._read, 64)
            except BlockingIOError:
                pass
            self.pgid = None
        return outcome

    def cancel(self, grace: float | None = None) -> bool:
        return False

    def output_so_far(self) -> RunOutput | None:
        return None

    def take_output(self, limit: int = 2**20) -> str:
        return ""

    def close(self, kill: bool = False) -> None:
        self.closed = True
