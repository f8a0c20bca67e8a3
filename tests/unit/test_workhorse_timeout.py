"""A run past its time limit is stopped with its process group: SIGTERM, then SIGKILL after
the grace."""

from __future__ import annotations

import threading
import time

import pytest

from tasker.manager.workhorse import Outcome, RunState
from tests.helpers import wait_for
from tests.unit.real_horse import GRACE, gone, job


@pytest.mark.parametrize("payload", [{}, {"seconds": 1000}], ids=["python loop", "C call"])
def test_handler_stuck_in_a_loop_is_stopped_at_its_timeout(horse, payload):
    began = time.monotonic()
    outcome = horse.perform(job("sleep" if payload else "loop", timeout=1, **payload))
    assert outcome == Outcome(RunState.TIMED_OUT, 1, "timed out after 1 s", None)
    assert 1 <= time.monotonic() - began < 1 + GRACE + 1
    assert horse.perform(job("return", payload=2)).payload == 2


def test_a_handler_that_ignores_sigterm_is_killed_after_the_grace(horse, caplog):
    ignoring = threading.Event()
    horse.on_progress = lambda percent, message: ignoring.set()
    began = time.monotonic()
    outcome = horse.perform(job("ignore_sigterm", timeout=0.5))
    assert ignoring.is_set()  # the handler had its SIGTERM ignored before the timeout
    assert outcome == Outcome(RunState.TIMED_OUT, 1, "timed out after 0.5 s", None)
    assert 0.5 + GRACE <= time.monotonic() - began < 0.5 + GRACE + 1
    assert "still running after SIGTERM; sending SIGKILL" in caplog.text


def test_a_grandchild_is_killed_with_the_group_on_timeout(horse, tmp_path):
    pidfile = tmp_path / "grandchild.pid"
    outcome = horse.perform(job("grandchild", timeout=1, pidfile=str(pidfile)))
    assert outcome.state is RunState.TIMED_OUT
    grandchild = int(pidfile.read_text())
    wait_for(lambda: gone(grandchild), timeout=5, interval=0.02, what="the grandchild to be killed")
