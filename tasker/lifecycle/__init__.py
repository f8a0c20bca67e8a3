"""The lifecycle of a task and of each endpoint's run: pure rules, no I/O.

Storage reads rows, asks these functions what follows, and writes what they decide; the API
and the manager call them too. Nothing here touches a database, a broker or a clock.

- A task has one response per endpoint from the moment it is created, in state `queued`.
- A manager's receipt moves the current run to `received` (counting an attempt), the start of
  the handler to `running`, its outcome to a final state.
- A run still `queued` at its delivery deadline is `missing` and never starts afterwards.
- A run delivered again after its manager stopped while running it `max_crashes` times is
  `failed` and never runs again: a run that kills its manager would otherwise do it forever.
  A run delivered again that had not started is `received` again: a manager stopped with a
  backlog (a deploy, a restart) counts against none of the runs it had not started.
- A retry starts a new run, numbered one more than the task's latest, for the endpoints it
  selects, all of them final; the others keep their runs. A cancel makes every run that has
  not started `skipped`; a running one is stopped by its manager (`cancelled`).
- A task with `max_concurrency` starts a run only while fewer endpoints run it; once more runs
  failed or timed out than its `max_errors`, the runs not started are `skipped`.
- A manager not seen for `DEAD_AFTER` of its heartbeat intervals is gone: a run it holds
  `running` no longer takes a slot of its task's `max_concurrency`.
- The task's status follows from its responses: `INCOMPLETE` once one is missing, `DONE` once
  all are final, `CANCELLED` once all are final after a cancel was requested.

The rules are in four modules: `runs` (receipt, start, outcome, the task's status),
`operations` (retry and cancel), `limits` (max_concurrency and max_errors) and `liveness`
(whether an endpoint's manager is alive).
"""

from tasker.lifecycle.limits import (
    HELD_BACK_ERRMSG,
    MAX_LIMIT,
    PERCENT,
    Limits,
    StartVerdict,
    decide_start,
    errors_exceeded,
    held_back,
    limit_count,
)
from tasker.lifecycle.liveness import DEAD_AFTER, dead_endpoints, is_alive
from tasker.lifecycle.operations import (
    CANCELLED_BEFORE_START,
    RETRY_SELECTIONS,
    RetryPlan,
    check_cancel,
    plan_retry,
    skipped_by_cancel,
)
from tasker.lifecycle.runs import (
    CRASHED_ERRMSG,
    MISSING_ERRMSG,
    Receipt,
    ReceiptDecision,
    RunRow,
    after_sent,
    count_states,
    crashed_errmsg,
    crashed_too_often,
    decide_receipt,
    is_missed,
    is_settled,
    may_finish,
    may_start,
    outcome_state,
    seed_status,
    task_status,
)

__all__ = [
    "CANCELLED_BEFORE_START",
    "CRASHED_ERRMSG",
    "DEAD_AFTER",
    "HELD_BACK_ERRMSG",
    "MAX_LIMIT",
    "MISSING_ERRMSG",
    "PERCENT",
    "RETRY_SELECTIONS",
    "Limits",
    "Receipt",
    "ReceiptDecision",
    "RetryPlan",
    "RunRow",
    "StartVerdict",
    "after_sent",
    "check_cancel",
    "count_states",
    "crashed_errmsg",
    "crashed_too_often",
    "dead_endpoints",
    "decide_receipt",
    "decide_start",
    "errors_exceeded",
    "held_back",
    "is_alive",
    "is_missed",
    "is_settled",
    "limit_count",
    "may_finish",
    "may_start",
    "outcome_state",
    "plan_retry",
    "seed_status",
    "skipped_by_cancel",
    "task_status",
]
