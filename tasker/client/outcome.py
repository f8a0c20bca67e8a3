"""The exit status of the `tasker` command, the first that applies:

| status | when |
| --- | --- |
| 2 | bad usage, or the API said the request was wrong (400, 401, 404, 409, 413, 415) |
| 4 | the API cannot be reached, did not answer in time, or answered 5xx |
| 1 | some endpoint `failed` or `timed_out` |
| 3 | the task is `INCOMPLETE` or `CANCELLED`; an endpoint `cancelled`, `skipped`, `missing`; not settled yet |
| 0 | every endpoint `succeeded` |

Commands that show a task's outcome (`get`, `watch`, `--wait`) end with its status; the others
end 0 once the API did what they asked. 2 and 4 come from tasker.client.errors.
"""

from __future__ import annotations

from tasker.client.task_view import state_counts
from tasker.status import ResponseState, TaskStatus

SUCCEEDED = 0
FAILED = 1
NOT_ALL_DONE = 3
ERRORS = (ResponseState.FAILED.value, ResponseState.TIMED_OUT.value)
NOT_DONE = (ResponseState.CANCELLED.value, ResponseState.SKIPPED.value, ResponseState.MISSING.value)
UNFINISHED_TASK = (TaskStatus.INCOMPLETE.value, TaskStatus.CANCELLED.value)


def counts_of(view: dict) -> dict[str, int]:
    """How many endpoints are in each state: the task's `counts`, else counted from its responses."""
    counts = view.get("task", {}).get("counts")
    return counts if isinstance(counts, dict) else state_counts(view)


def task_exit_status(view: dict) -> int:
    """The exit status that tells a task's outcome, from a `GET /<type>/<identifier>` body."""
    task, counts = view.get("task", {}), counts_of(view)
    if any(counts.get(state, 0) for state in ERRORS):
        return FAILED
    if task.get("status") in UNFINISHED_TASK or any(counts.get(state, 0) for state in NOT_DONE):
        return NOT_ALL_DONE
    if not task.get("settled", False) or counts.get(ResponseState.SUCCEEDED.value, 0) != sum(counts.values()):
        return NOT_ALL_DONE
    return SUCCEEDED
