"""What a handler answers is its run's outcome: its payload, its errnr, its exception (any
BaseException), nonsense it returns, progress it reports. The handler module is
tests.handlers.horse: each job's payload says what it does."""

from __future__ import annotations

import dataclasses
import logging
import os

import pytest

from tasker.manager.workhorse import Job, Outcome, RunState, WorkHorse
from tests.unit.real_horse import GRACE, HANDLER, failed, job


def test_a_handler_runs_in_a_child_leading_its_own_group_and_sees_the_task(horse, started):
    outcome = horse.perform(job("echo"))
    assert outcome.state is RunState.SUCCEEDED and (outcome.errnr, outcome.errmsg) == (0, None)
    seen = outcome.payload
    assert seen["pid"] != os.getpid() and seen["pgid"] == seen["pid"] == started[0]
    assert seen["pgid"] != os.getpgid(0) and os.getsid(seen["pid"]) == seen["pid"]  # the manager's signals miss it
    del seen["pid"], seen["pgid"]
    assert seen == {
        "id": 7,
        "identifier": "t-7",
        "type": "horse",
        "endpoints": ["console1", "console2"],
        "settings": {"wait": 0},
        "run": 2,
        "task_id": 7,
        "endpoint": "console1",
        "attempts": 3,
        "response_run": 2,
    }


def test_the_persistent_child_serves_run_after_run(horse, started):
    for number in range(3):
        assert horse.perform(job("return", payload={"n": number})).payload == {"n": number}
    assert len(set(started)) == 1


def test_a_handler_that_sets_an_errnr_fails_with_it(horse):
    assert horse.perform(job("errnr")) == Outcome(RunState.FAILED, 32, "could not backup!", None)


def test_an_exception_fails_the_run_with_its_type_and_message_and_logs_the_traceback(horse, caplog):
    with caplog.at_level(logging.ERROR):
        outcome = horse.perform(job("raise"))
    assert outcome == failed("RuntimeError: disk full on console1")
    assert "task t-7 on console1: handler raised" in caplog.text
    assert "Traceback" in caplog.text and "raise make(response)" in caplog.text


def test_an_exception_whose_str_raises_still_gives_a_usable_errmsg(horse):
    outcome = horse.perform(job("unprintable"))
    assert outcome.state is RunState.FAILED and outcome.errmsg.startswith("Unprintable")


@pytest.mark.parametrize(
    "do, errmsg",
    [("bailout", "Bailout: no way"), ("interrupt", "KeyboardInterrupt"), ("exit", "SystemExit: 3")],
)
def test_a_base_exception_fails_the_run_and_the_child_goes_on(horse, started, do, errmsg):
    assert horse.perform(job(do)) == failed(errmsg)
    assert horse.perform(job("return", payload=1)).payload == 1
    assert started[0] == started[1]


RAISERS = """
class Custom(BaseException):
    pass


class Unshowable(BaseException):
    def __str__(self):
        raise KeyboardInterrupt("not even this")


class ExitingStr(Exception):
    def __str__(self):
        raise SystemExit(4)


RAISE = {
    "generator_exit": GeneratorExit,
    "custom": lambda: Custom("out of here"),
    "unshowable": Unshowable,
    "exiting_str": ExitingStr,
}


def handle_task(task, response):
    if task.payload == "ok":
        response.payload = "ok"
        return response
    raise RAISE[task.payload]()
"""


@pytest.fixture
def raisers(tmp_path, monkeypatch, started):
    """A work horse of a handler module that raises what its task's payload names."""
    (tmp_path / "tasker_test_raisers.py").write_text(RAISERS)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")])))
    horse = WorkHorse("tasker_test_raisers", {}, grace=GRACE, on_start=started.append)
    yield horse
    horse.close(kill=True)


@pytest.mark.parametrize(
    "payload, errmsg",
    [
        ("generator_exit", "GeneratorExit"),
        ("custom", "Custom: out of here"),
        ("unshowable", "Unshowable (its message cannot be shown: str() raised KeyboardInterrupt)"),
        ("exiting_str", "ExitingStr (its message cannot be shown: str() raised SystemExit)"),
    ],
)
def test_any_base_exception_even_one_whose_str_raises_fails_the_run_and_the_child_goes_on(
    raisers, started, payload, errmsg
):
    raising = Job(7, "t-7", "raisers", payload, ["console1"], "console1", 1, 1)
    assert raisers.perform(raising) == failed(errmsg)
    assert raisers.perform(dataclasses.replace(raising, payload="ok")).payload == "ok"
    assert started[0] == started[1], "the same child served both runs"


@pytest.mark.parametrize(
    "do, errmsg",
    [
        ("not_json", "handler set a payload that is not JSON: Object of type set is not JSON serializable"),
        ("nan", "handler set a payload that is not JSON: Out of range float values are not JSON compliant"),
        ("big_errnr", "handler set errnr to 1099511627776, not an int of 32 bits"),
        ("wrong_return", "handle_task returned int, not the taskResponse"),
        ("progress_bad", "ValueError: progress percent must be from 0 to 100, not 150.0"),
    ],
)
def test_a_handler_that_answers_nonsense_fails(horse, do, errmsg):
    assert horse.perform(job(do)) == failed(errmsg)


def test_a_handler_may_return_a_taskresponse_of_its_own(horse):
    assert horse.perform(job("new_response")) == Outcome(RunState.SUCCEEDED, 0, None, "new")


def test_a_result_over_max_result_fails_and_one_at_the_limit_does_not():
    horse = WorkHorse(HANDLER, {}, max_result=1000)
    try:
        assert horse.perform(job("big", size=998)).state is RunState.SUCCEEDED  # 1000 bytes with its quotes
        assert horse.perform(job("big", size=1000)) == failed(
            "result payload of 1002 bytes is over manager.max_result (1000 bytes)"
        )
    finally:
        horse.close()


def test_progress_reports_are_throttled(horse):
    progress = []
    horse.on_progress = lambda percent, message: progress.append((percent, message))
    assert horse.perform(job("progress_burst")).state is RunState.SUCCEEDED
    assert progress == [(0.0, "at 0")]
