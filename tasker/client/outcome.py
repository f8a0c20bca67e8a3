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

from collections import Counter

SUCCEEDED = 0
FAILED = 1
NOT_ALL_DONE = 3
ERRORS = ("failed", "timed_out")
NOT_DONE = ("cancelled", "skipped", "missing")


def counts_of(view: dict) -> dict[str, int]:
    """How many endpoints are in each state: the task's `counts`, else counted from its responses."""
    counts = view.get("task", {}).get("counts")
    if isinstance(counts, dict):
        return counts
    return dict(Counter(response.get("state") for response in view.get("taskResponseList", [])))


def task_exit_status(view: dict) -> int:
    """The exit status that tells a task's outcome, from a `GET /<type>/<identifier>` body."""
    task, counts = view.get("task", {}), counts_of(view)
    if any(counts.get(state, 0) for state in ERRORS):
        return FAILED
    if task.get("status") in ("INCOMPLETE", "CANCELLED") or any(counts.get(state, 0) for state in NOT_DONE):
        return NOT_ALL_DONE
    if not task.get("settled", False) or counts.get("succeeded", 0) != sum(counts.values()):
        return NOT_ALL_DONE
    return SUCCEEDED
