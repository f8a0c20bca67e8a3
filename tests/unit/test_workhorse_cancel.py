"""Cancelling the run in hand: the handler sees `task.cancelled()`, and one still going after
the grace is stopped with its process group."""

from __future__ import annotations

import threading
import time

import pytest

from tasker.manager.workhorse import Outcome, RunOutput, RunState
from tests.helpers import wait_for
from tests.unit.real_horse import GRACE, drive, drive_until, gone, job


def test_cancel_from_another_thread_stops_the_run_as_cancelled_after_the_grace(horse):
    progress = []
    running = threading.Event()
    horse.on_progress = lambda percent, message: (progress.append((percent, message)), running.set())
    cancelled = []
    canceller = threading.Thread(
        target=lambda: running.wait(10) and cancelled.append((horse.cancel(), time.monotonic()))
    )
    canceller.start()
    outcome = horse.perform(job("progress_loop"))
    ended = time.monotonic()
    canceller.join()
    assert outcome == Outcome(RunState.CANCELLED, 1, "cancelled", None)
    assert progress == [(10.0, "started")] and cancelled[0][0] is True
    assert GRACE <= ended - cancelled[0][1] < GRACE + 1  # the horse's grace, then SIGTERM
    assert horse.cancel() is False  # nothing in hand


def test_cancel_with_no_run_in_hand_is_false(horse):
    assert horse.cancel() is False
    horse.perform(job("return"))
    assert horse.cancel() is False


@pytest.fixture
def waiting(horse):
    """Begin a run of `do` and drive it until the handler reported progress."""

    def begin(do: str, **payload) -> None:
        progress = []
        horse.on_progress = lambda percent, message: progress.append(message)
        horse.begin(job(do, **payload))
        drive_until(horse, lambda: progress)

    return begin


def test_a_cooperative_handler_sees_cancelled_within_a_second_and_ends_cancelled(horse, waiting, started):
    waiting("cooperative")
    asked = time.monotonic()
    assert horse.cancel(grace=60) is True and horse.cancel(grace=60) is False  # asked already
    outcome = drive(horse)
    assert time.monotonic() - asked < 1
    output = RunOutput("waiting\nstopping\n", 17, False)
    assert outcome == Outcome(RunState.CANCELLED, 1, "cancelled: stopped early", None, output)
    assert horse.perform(job("cancelled_flag")).payload is False  # the next run, in the same child
    assert len(set(started)) == 1


def test_a_handler_that_succeeds_after_a_cancel_is_succeeded(horse, waiting, started):
    waiting("cooperative", then="succeed")
    assert horse.cancel(grace=60) is True
    assert drive(horse, limit=1) == Outcome(
        RunState.SUCCEEDED, 0, None, "finished", RunOutput("waiting\nstopping\n", 17)
    )
    assert horse.perform(job("cancelled_flag")).payload is False
    assert len(set(started)) == 1


def test_a_stubborn_handler_is_stopped_with_its_group_after_the_grace(horse, waiting, started, tmp_path):
    pidfile = tmp_path / "grandchild.pid"
    waiting("stubborn", pidfile=str(pidfile))
    asked = time.monotonic()
    assert horse.cancel(grace=0.5) is True
    output = RunOutput("stubborn\n", 9, False)  # what it wrote before it was killed
    assert drive(horse) == Outcome(RunState.CANCELLED, 1, "cancelled", None, output)
    assert 0.5 <= time.monotonic() - asked < 0.5 + GRACE + 1
    grandchild = int(pidfile.read_text())
    wait_for(lambda: gone(grandchild), timeout=5, interval=0.02, what="the grandchild to be killed")
    assert horse.perform(job("return", payload=1)).payload == 1
    assert started[1] != started[0]  # a new child


def test_a_run_that_reaches_its_time_limit_after_a_cancel_is_cancelled(horse, waiting):
    waiting("progress_loop", timeout=0.5)
    assert horse.cancel(grace=60) is True
    assert drive(horse) == Outcome(RunState.CANCELLED, 1, "cancelled", None)
