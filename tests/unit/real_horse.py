"""Driving a real work horse in tests: jobs for the handler module tests.handlers.horse (each
job's payload says what it does), a manager's collect loop, and whether a process is gone."""

from __future__ import annotations

import os
import select
import time

from tasker.manager.workhorse import Job, Outcome, RunState, WorkHorse

HANDLER = "tests.handlers.horse"
GRACE = 0.5


def job(do: str, timeout: float | None = None, **payload) -> Job:
    return Job(7, "t-7", "horse", {"do": do, **payload}, ["console1", "console2"], "console1", 2, 3, timeout)


def failed(errmsg: str) -> Outcome:
    return Outcome(RunState.FAILED, 1, errmsg, None)


def gone(pid: int) -> bool:
    """Whether a process has ended, all its threads (a zombie waiting for its parent counts as ended)."""
    try:
        os.kill(pid, 0)
        threads = os.listdir("/proc/%d/task" % pid)
    except (ProcessLookupError, FileNotFoundError):
        return True
    return threads == [str(pid)] and _state(pid) in ("Z", None)


def _state(pid: int) -> str | None:
    try:
        with open("/proc/%d/stat" % pid) as stat:
            return stat.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return None


def drive(horse: WorkHorse, limit: float = 20.0) -> Outcome:
    """Collect the run in hand the way a manager's select loop does."""
    deadline = time.monotonic() + limit
    while True:
        outcome = horse.collect()
        if outcome is not None:
            return outcome
        now = time.monotonic()
        assert now < deadline, "the run did not end"
        check = horse.next_check()
        select.select([horse.fileno()], [], [], max(0.0, min(deadline, check or deadline) - now))


def drive_until(horse: WorkHorse, condition, limit: float = 10.0) -> None:
    """Collect the run in hand, as a manager's loop does, until `condition()` holds; the run goes on."""
    deadline = time.monotonic() + limit
    while not condition():
        assert horse.collect() is None, "the run ended"
        assert time.monotonic() < deadline, "timed out waiting for %s" % condition
        select.select([horse.fileno()], [], [], 0.05)
