"""A work horse's life: started, driven from a select loop, closed; its child replaced, one a
run when fresh, dying with its manager; the groups of children left behind killed."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import threading
import time

import pytest

from tasker.errors import HandlerModuleError, WorkHorseError
from tasker.manager.workhorse import Outcome, RunState, WorkHorse, kill_group
from tests.helpers import ROOT, wait_for
from tests.unit.real_horse import GRACE, HANDLER, drive, failed, gone, job


def test_a_run_can_be_driven_from_a_select_loop(horse):
    pgid = horse.begin(job("return", payload=5))
    assert horse.pgid == pgid and horse.next_check() is None
    assert drive(horse) == Outcome(RunState.SUCCEEDED, 0, None, 5)
    assert horse.pgid == pgid  # the persistent child waits for the next run
    assert horse.begin(job("loop", timeout=0.5)) == pgid and horse.next_check() is not None
    assert drive(horse).state is RunState.TIMED_OUT
    assert horse.pgid is None and gone(pgid)
    horse.begin(job("loop"))
    assert horse.cancel(grace=0) is True  # no grace: SIGTERM at once
    assert drive(horse) == Outcome(RunState.CANCELLED, 1, "cancelled", None)


def test_closing_with_a_run_in_hand_needs_kill_and_then_kills_its_group(horse):
    pgid = horse.begin(job("loop"))
    with pytest.raises(WorkHorseError, match="a run is in hand"):
        horse.close()
    horse.close(kill=True)
    assert gone(pgid) and horse.collect() is None and horse.pgid is None


def test_close_with_kill_stops_the_run_in_hand_without_waiting_for_the_grace(started):
    horse = WorkHorse(HANDLER, {}, grace=30, on_progress=lambda percent, message: closer.start())
    closer = threading.Thread(target=horse.close, kwargs={"kill": True})
    began = time.monotonic()
    outcome = horse.perform(job("progress_loop"))
    closer.join()
    assert outcome == Outcome(RunState.CANCELLED, 1, "killed: the work horse is closing", None)
    assert time.monotonic() - began < 10
    with pytest.raises(WorkHorseError, match="closed"):
        horse.perform(job("return"))


def test_a_child_whose_starting_thread_ended_is_replaced_at_the_next_run(horse, started, caplog):
    first = threading.Thread(target=horse.perform, args=(job("return"),))
    first.start()
    first.join()  # PR_SET_PDEATHSIG follows the thread: the child gets SIGKILL now
    wait_for(lambda: gone(started[0]), timeout=5, interval=0.02, what="the child to die with its thread")
    assert horse.perform(job("return", payload=4)).payload == 4
    assert started[1] != started[0] and "ended idle: handler process was killed" in caplog.text


def test_close_ends_an_idle_child(horse, started):
    horse.perform(job("return"))
    horse.close()
    assert gone(started[0])
    with pytest.raises(WorkHorseError, match="closed"):
        horse.perform(job("return"))


def test_a_module_that_cannot_be_imported_is_refused_at_start_and_fails_runs(caplog):
    horse = WorkHorse("tests.handlers.no_such_horse", {})
    try:
        with pytest.raises(HandlerModuleError, match="cannot import handler module tests.handlers.no_such_horse"):
            horse.start()
        outcome = horse.perform(job("return"))
        assert outcome.state is RunState.FAILED
        assert outcome.errmsg.startswith("cannot import handler module tests.handlers.no_such_horse: ")
    finally:
        horse.close()


def test_settings_that_are_not_json_are_refused():
    with pytest.raises(Exception, match="not JSON data"):
        WorkHorse(HANDLER, {"when": object()})


def test_a_fresh_child_per_run_gives_the_same_outcomes():
    started: list[int] = []
    horse = WorkHorse(HANDLER, {"wait": 0}, grace=GRACE, fresh=True, on_start=started.append)
    try:
        horse.start()
        assert horse.perform(job("return", payload=1)).payload == 1
        assert horse.perform(job("raise")) == failed("RuntimeError: disk full on console1")
        assert horse.perform(job("os_exit")) == failed("handler process exited with status 3")
        assert horse.perform(job("loop", timeout=0.5)).state is RunState.TIMED_OUT
        assert horse.perform(job("mixed")).output.text.startswith("one\ntwo\nthree\n")
        assert len(set(started)) == 5 and all(gone(pgid) for pgid in started)
    finally:
        horse.close()


HELPER = """
import sys
from tasker.manager.workhorse import Job, WorkHorse
horse = WorkHorse("tests.handlers.horse", {}, on_start=lambda pgid: print(pgid, flush=True))
horse.perform(Job(1, "t-1", "horse", {"do": "sleep", "seconds": 1000}, ["e"], "e", 1, 1, None))
"""


def test_the_child_dies_when_the_manager_side_process_dies():
    helper = subprocess.Popen([sys.executable, "-c", HELPER], cwd=ROOT, stdout=subprocess.PIPE)
    try:
        assert select.select([helper.stdout], [], [], 20)[0], "the helper did not start a run"
        child = int(helper.stdout.readline())
        assert not gone(child)
    finally:
        helper.kill()
        helper.wait()
        helper.stdout.close()
    wait_for(lambda: gone(child), timeout=5, interval=0.02, what="the child to die with its manager")


def test_kill_group_kills_a_work_horse_group_and_spares_others(horse):
    pgid = horse.perform(job("echo")).payload["pgid"]
    other = subprocess.Popen(["sleep", "1000"], start_new_session=True)
    try:
        assert kill_group(other.pid) is False
        assert other.poll() is None
    finally:
        other.kill()
        other.wait()
    assert kill_group(pgid) is True
    wait_for(lambda: gone(pgid), timeout=5, interval=0.02, what="the killed group's leader to die")
    assert horse.perform(job("return", payload=3)).payload == 3  # a new child
    with pytest.raises(ValueError):
        kill_group(os.getpgid(0))
    with pytest.raises(ValueError):
        kill_group(0)


def test_kill_group_of_a_group_that_is_gone_is_false(horse):
    pgid = horse.perform(job("echo")).payload["pgid"]
    horse.close()
    assert kill_group(pgid) is False  # gone: nothing to kill, and no error
