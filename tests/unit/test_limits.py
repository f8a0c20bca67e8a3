"""max_concurrency and max_errors: how many endpoints may run a task at once, and how many may
fail before the rest is held back; pure rules, checked without a database."""

from __future__ import annotations

import datetime as dt

import pytest

from tasker.lifecycle import HELD_BACK_ERRMSG, Limits, RunRow, StartVerdict, decide_start, held_back, limit_count
from tasker.status import ResponseState as S

LATER = dt.datetime(2026, 1, 1, 12, 0, 30)


def rows(*states, run=1):
    return {"e%d" % number: RunRow(state, run, 1, LATER) for number, state in enumerate(states, 1)}


@pytest.mark.parametrize(
    "value, selected, round_up, count",
    [
        (None, 4, True, None),
        (3, 4, True, 3),
        ("25%", 4, True, 1),
        ("25%", 5, True, 2),  # concurrency rounds up
        ("1%", 3, True, 1),  # and is at least 1
        ("25%", 5, False, 1),  # errors round down
        ("10%", 5, False, 0),
        ("100%", 7, False, 7),
        (0, 3, False, 0),
    ],
)
def test_a_limit_is_a_number_of_endpoints(value, selected, round_up, count):
    assert limit_count(value, selected, round_up) == count


def test_a_run_starts_while_fewer_endpoints_than_max_concurrency_run_the_task():
    limits = Limits(max_concurrency=2)
    assert decide_start(limits, "e1", 1, rows(S.RECEIVED, S.RUNNING, S.QUEUED)) is StartVerdict.GO
    assert decide_start(limits, "e1", 1, rows(S.RECEIVED, S.RUNNING, S.RUNNING)) is StartVerdict.WAIT
    assert decide_start(limits, "e1", 1, rows(S.RECEIVED, S.RUNNING, S.SUCCEEDED, S.FAILED)) is StartVerdict.GO


def test_a_percentage_of_concurrency_counts_the_tasks_endpoints():
    limits = Limits(max_concurrency="50%")
    assert decide_start(limits, "e1", 1, rows(S.RECEIVED, S.RUNNING, S.QUEUED, S.QUEUED)) is StartVerdict.GO
    assert decide_start(limits, "e1", 1, rows(S.RECEIVED, S.RUNNING, S.RUNNING, S.QUEUED)) is StartVerdict.WAIT


def test_once_more_runs_failed_than_max_errors_nothing_more_starts():
    limits = Limits(max_errors=1)
    assert decide_start(limits, "e1", 1, rows(S.RECEIVED, S.FAILED)) is StartVerdict.GO
    assert decide_start(limits, "e1", 1, rows(S.RECEIVED, S.FAILED, S.TIMED_OUT)) is StartVerdict.SKIP
    assert decide_start(Limits(max_errors=0), "e1", 1, rows(S.RECEIVED, S.TIMED_OUT)) is StartVerdict.SKIP
    # Cancelled and skipped runs are not errors.
    assert decide_start(Limits(max_errors=0), "e1", 1, rows(S.RECEIVED, S.CANCELLED, S.SKIPPED)) is StartVerdict.GO


def test_errors_are_checked_before_slots():
    limits = Limits(max_concurrency=1, max_errors=0)
    assert decide_start(limits, "e1", 1, rows(S.RECEIVED, S.RUNNING, S.FAILED)) is StartVerdict.SKIP


@pytest.mark.parametrize("state", [S.QUEUED, S.SKIPPED, S.SUCCEEDED, S.MISSING])
def test_a_run_that_is_not_received_is_not_to_start(state):
    assert decide_start(Limits(max_concurrency=1), "e1", 1, rows(state)) is StartVerdict.OVER


def test_a_run_of_another_run_number_is_not_to_start():
    assert decide_start(Limits(max_concurrency=1), "e1", 1, rows(S.RECEIVED, run=2)) is StartVerdict.OVER


def test_a_run_holding_its_slot_already_goes_on():
    assert decide_start(Limits(max_concurrency=1), "e1", 1, rows(S.RUNNING, S.RUNNING)) is StartVerdict.GO


def test_max_errors_holds_back_every_endpoint_not_started_with_the_reason():
    states = {"a": S.FAILED, "b": S.RUNNING, "c": S.RECEIVED, "d": S.QUEUED, "e": S.SUCCEEDED}
    endpoints, errmsg = held_back(Limits(max_errors=0), states)
    assert endpoints == ["c", "d"]
    assert errmsg == HELD_BACK_ERRMSG % (1, 0)
    assert held_back(Limits(max_errors=1), states) == ([], None)
    assert held_back(Limits(max_concurrency=1), states) == ([], None)
