"""The lifecycle's rules, without storage: receipts, outcomes, task status, counts, settled."""

from __future__ import annotations

import datetime as dt

import pytest

from tasker.errors import InvalidTask, TaskConflict
from tasker.lifecycle import (
    Receipt,
    RetryPlan,
    RunRow,
    check_cancel,
    count_states,
    decide_receipt,
    is_missed,
    is_settled,
    may_finish,
    may_start,
    outcome_state,
    plan_retry,
    seed_status,
    skipped_by_cancel,
    task_status,
)
from tasker.status import ResponseState as S
from tasker.status import TaskStatus as T

NOW = dt.datetime(2026, 1, 1, 12, 0, 0)
LATER = NOW + dt.timedelta(seconds=30)
EARLIER = NOW - dt.timedelta(seconds=1)


def row(state=S.QUEUED, run=1, attempts=0, deadline=LATER):
    return RunRow(state, run, attempts, deadline)


def test_a_first_receipt_in_time_runs_it_as_attempt_one():
    decision = decide_receipt(row(), 1, NOW)
    assert (decision.receipt, decision.attempts, decision.state) == (Receipt.RUN, 1, S.RECEIVED)


def test_a_receipt_after_the_deadline_never_starts_the_run():
    decision = decide_receipt(row(deadline=EARLIER), 1, NOW)
    assert decision.receipt is Receipt.STALE and decision.state is None


def test_a_redelivery_of_a_received_run_counts_another_attempt_even_after_the_deadline():
    decision = decide_receipt(row(S.RUNNING, attempts=1, deadline=EARLIER), 1, NOW)
    assert (decision.receipt, decision.attempts, decision.state) == (Receipt.RUN, 2, S.RECEIVED), "not running yet"


def test_a_delivery_of_a_run_received_before_is_another_attempt_in_the_same_state():
    decision = decide_receipt(row(S.RECEIVED, attempts=3), 1, NOW)
    assert (decision.receipt, decision.attempts, decision.state) == (Receipt.RUN, 4, S.RECEIVED)


def test_a_run_delivered_again_after_its_managers_stopped_max_crashes_times_is_failed_not_run():
    decision = decide_receipt(row(S.RUNNING, attempts=3, deadline=EARLIER), 1, NOW, max_crashes=3)
    assert (decision.receipt, decision.attempts, decision.state) == (Receipt.CRASHED, 4, S.RUNNING)
    assert decision.errmsg == "the run's manager stopped 3 times while holding it (manager.max_crashes)"


def test_a_run_whose_managers_stopped_fewer_than_max_crashes_times_runs_again():
    decision = decide_receipt(row(S.RUNNING, attempts=2), 1, NOW, max_crashes=3)
    assert (decision.receipt, decision.attempts, decision.errmsg) == (Receipt.RUN, 3, None)


def test_without_max_crashes_a_run_is_delivered_again_however_often_its_managers_stopped():
    assert decide_receipt(row(S.RUNNING, attempts=1000), 1, NOW).receipt is Receipt.RUN


def test_max_crashes_never_fails_a_first_delivery_a_final_run_or_another_run():
    assert decide_receipt(row(), 1, NOW, max_crashes=0).receipt is Receipt.RUN
    assert decide_receipt(row(S.SUCCEEDED, attempts=9), 1, NOW, max_crashes=3).receipt is Receipt.FINISHED
    assert decide_receipt(row(S.RUNNING, run=2, attempts=9), 1, NOW, max_crashes=3).receipt is Receipt.OTHER_RUN
    assert decide_receipt(row(attempts=0, deadline=EARLIER), 1, NOW, max_crashes=0).receipt is Receipt.STALE


def test_a_run_its_managers_stopped_before_starting_it_is_never_failed_as_a_crash():
    """A manager stopped with a backlog (a deploy) lets go of runs it had not started."""
    decision = decide_receipt(row(S.RECEIVED, attempts=9), 1, NOW, max_crashes=3)
    assert (decision.receipt, decision.attempts, decision.state) == (Receipt.RUN, 10, S.RECEIVED)


def test_max_crashes_zero_fails_any_delivery_of_a_run_received_before():
    decision = decide_receipt(row(S.RUNNING, attempts=1), 1, NOW, max_crashes=0)
    assert (decision.receipt, decision.attempts) == (Receipt.CRASHED, 2)
    assert decision.errmsg == "the run's manager stopped once while holding it (manager.max_crashes)"


@pytest.mark.parametrize("state", [s for s in S if s.final])
def test_a_copy_of_a_final_run_is_acknowledged_only(state):
    assert decide_receipt(row(state, attempts=1), 1, NOW).receipt is Receipt.FINISHED


def test_a_copy_of_another_run_is_acknowledged_unperformed():
    assert decide_receipt(row(S.QUEUED, run=2), 1, NOW).receipt is Receipt.OTHER_RUN
    assert decide_receipt(row(S.SUCCEEDED, run=1), 2, NOW).receipt is Receipt.OTHER_RUN


def test_an_unknown_response_is_set_aside():
    assert decide_receipt(None, 1, NOW).receipt is Receipt.UNKNOWN


def test_only_a_received_current_run_may_start_and_only_an_open_current_run_may_finish():
    assert may_start(row(S.RECEIVED), 1) and may_start(row(S.RUNNING), 1)
    assert not may_start(row(S.QUEUED), 1) and not may_start(row(S.RECEIVED, run=2), 1)
    assert not may_start(None, 1)
    assert may_finish(row(S.RUNNING), 1) and may_finish(row(S.RECEIVED), 1)
    assert not may_finish(row(S.CANCELLED), 1) and not may_finish(row(S.RUNNING, run=2), 1)


def test_a_run_is_missed_only_while_queued_past_its_deadline():
    assert is_missed(row(deadline=EARLIER), NOW)
    assert not is_missed(row(), NOW)
    assert not is_missed(row(S.RECEIVED, deadline=EARLIER), NOW)


def test_outcomes_and_the_seed_status():
    assert outcome_state(0) is S.SUCCEEDED
    assert outcome_state(32) is S.FAILED and outcome_state(-1) is S.FAILED
    assert [seed_status(s) for s in (S.QUEUED, S.RECEIVED, S.RUNNING)] == [0, 0, 0]
    assert all(seed_status(s) == 1 for s in S if s.final)


def test_counts_name_every_state_and_sum_to_the_endpoints():
    counts = count_states([S.QUEUED, S.SUCCEEDED, S.SUCCEEDED])
    assert set(counts) == {s.value for s in S}
    assert counts["succeeded"] == 2 and counts["queued"] == 1 and sum(counts.values()) == 3


def test_settled_means_nothing_queued_received_or_running():
    assert is_settled([S.SUCCEEDED, S.MISSING, S.SKIPPED])
    assert not is_settled([S.SUCCEEDED, S.RECEIVED])
    assert is_settled([])


def test_the_task_is_done_when_every_run_is_final_and_none_missing():
    assert task_status(T.SENT, [S.SUCCEEDED, S.FAILED]) is T.DONE
    assert task_status(T.CREATED, [S.SUCCEEDED, S.TIMED_OUT]) is T.DONE
    assert task_status(T.SENT, [S.SUCCEEDED, S.RUNNING]) is T.SENT
    assert task_status(T.CREATED, [S.QUEUED, S.QUEUED]) is T.CREATED


def test_the_task_is_incomplete_as_soon_as_one_run_is_missing_while_others_run_on():
    assert task_status(T.SENT, [S.MISSING, S.RUNNING]) is T.INCOMPLETE
    assert task_status(T.INCOMPLETE, [S.MISSING, S.SUCCEEDED]) is T.INCOMPLETE


def test_a_cancelled_task_is_cancelled_once_nothing_runs():
    assert task_status(T.SENT, [S.CANCELLED, S.SKIPPED], cancel_requested=True) is T.CANCELLED
    assert task_status(T.SENT, [S.RUNNING, S.SKIPPED], cancel_requested=True) is T.SENT


def test_a_settled_task_whose_runs_open_again_is_sent():
    for settled in (T.DONE, T.INCOMPLETE, T.CANCELLED):
        assert task_status(settled, [S.QUEUED, S.SUCCEEDED]) is T.SENT


def rows(**states):
    """Rows by endpoint: a state name, or (state name, run)."""
    made = {}
    for endpoint, value in states.items():
        state, run = value if isinstance(value, tuple) else (value, 1)
        made[endpoint] = row(S(state), run=run, attempts=1)
    return made


def test_a_retry_of_failed_selects_every_run_that_did_not_succeed_and_numbers_the_next_run():
    found = rows(a="succeeded", b="failed", c="timed_out", d="missing", e="skipped", f="cancelled")
    assert plan_retry(found, "failed", None) == RetryPlan(["b", "c", "d", "e", "f"], 2)
    assert plan_retry(found, "missing", None) == RetryPlan(["d"], 2)
    assert plan_retry(found, "unfinished", None) == RetryPlan(["d", "e", "f"], 2)
    assert plan_retry(found, "all", None).endpoints == list(found)


def test_runs_are_numbered_per_task_so_one_message_carries_a_retry():
    assert plan_retry(rows(a=("failed", 3), b=("succeeded", 1)), ["a", "b"], None) == RetryPlan(["a", "b"], 4)


def test_a_retry_is_refused_for_an_open_selected_endpoint_or_an_empty_selection():
    with pytest.raises(TaskConflict, match="'a' is still running"):
        plan_retry(rows(a="running", b="failed"), ["a", "b"], None)
    with pytest.raises(TaskConflict, match="nothing to retry"):
        plan_retry(rows(a="succeeded"), "failed", None)
    with pytest.raises(InvalidTask, match="'z' is not one of the task's endpoints"):
        plan_retry(rows(a="failed"), ["z"], None)
    assert plan_retry(rows(a="running", b="failed"), "failed", None) == RetryPlan(["b"], 2), "others may run"


def test_after_run_answers_a_repeated_retry_without_a_new_run():
    done = rows(a=("queued", 2), b=("succeeded", 1))
    assert plan_retry(done, ["a"], 1).repeated and plan_retry(done, "failed", 1).repeated
    assert not plan_retry(rows(a="failed"), "failed", 1).repeated


def test_a_cancel_is_recorded_once_and_refused_for_a_task_settled_without_one():
    assert check_cancel(False, [S.RUNNING, S.SUCCEEDED]) is True
    assert check_cancel(True, [S.SKIPPED]) is False, "repeated: nothing new"
    with pytest.raises(TaskConflict, match="never cancelled"):
        check_cancel(False, [S.SUCCEEDED, S.FAILED])
    assert [skipped_by_cancel(s) for s in (S.QUEUED, S.RECEIVED, S.RUNNING, S.FAILED)] == [True, True, False, False]
