"""A handler process that exits, crashes or is killed fails its run, and the next run gets
a new child."""

from __future__ import annotations

from tasker.manager.workhorse import RunState
from tests.unit.real_horse import failed, job


def test_a_handler_that_exits_fails_and_the_next_run_gets_a_new_child(horse, started, caplog):
    assert horse.perform(job("os_exit")) == failed("handler process exited with status 3")
    assert "task t-7 on console1: handler process exited with status 3" in caplog.text
    assert horse.perform(job("return", payload="again")).payload == "again"
    assert started[0] != started[1]


def test_a_segfault_fails_the_run_with_signal_11(horse):
    assert horse.perform(job("segfault")) == failed("handler process died: signal 11 (SIGSEGV)")
    assert horse.perform(job("return")).state is RunState.SUCCEEDED


def test_a_handler_killed_by_sigkill_fails_the_run(horse):
    assert horse.perform(job("sigkill")) == failed("handler process was killed: signal 9 (SIGKILL)")
