"""The `tasker` command's exit status, from a task's view: the first that applies."""

from __future__ import annotations

import pytest

from tasker.client.outcome import task_exit_status

ZERO = {state: 0 for state in ("queued", "received", "running", "succeeded", "failed", "timed_out")}
ZERO.update(cancelled=0, skipped=0, missing=0)


def view(status: str = "DONE", settled: bool = True, **counts: int) -> dict:
    return {"task": {"status": status, "settled": settled, "counts": dict(ZERO, **counts)}, "taskResponseList": []}


@pytest.mark.parametrize(
    "task, status",
    [
        (view(succeeded=2), 0),
        (view(succeeded=1, failed=1), 1),
        (view(succeeded=1, timed_out=1), 1),
        (view("INCOMPLETE", succeeded=1, missing=1), 3),
        (view("CANCELLED", succeeded=1, cancelled=1), 3),
        (view("DONE", succeeded=1, skipped=1), 3),
        (view("CANCELLED", failed=1, skipped=1), 1),  # a failure comes first
        (view("INCOMPLETE", failed=1, missing=1), 1),
        (view("SENT", settled=False, succeeded=1, running=1), 3),  # not settled: not all succeeded yet
        (view("SENT", settled=False, failed=1, running=1), 1),  # failed already, whatever comes
        (view("CANCELLED", succeeded=2), 3),  # cancelled too late to stop anything: still cancelled
    ],
)
def test_the_exit_status_is_the_first_that_applies(task, status):
    assert task_exit_status(task) == status


def test_without_counts_the_states_of_the_responses_are_counted():
    responses = [{"endpoint": "a", "state": "succeeded"}, {"endpoint": "b", "state": "missing"}]
    task = {"task": {"status": "INCOMPLETE", "settled": True}, "taskResponseList": responses}
    assert task_exit_status(task) == 3
    task["taskResponseList"][1]["state"] = "succeeded"
    task["task"]["status"] = "DONE"
    assert task_exit_status(task) == 0
