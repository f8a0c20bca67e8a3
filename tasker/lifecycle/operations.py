"""What a client may ask of a task once it runs: a retry of some endpoints, a cancel."""

from __future__ import annotations

import dataclasses
from typing import Iterable

from tasker.errors import InvalidTask, TaskConflict
from tasker.lifecycle.runs import RunRow, is_settled
from tasker.status import ResponseState

CANCELLED_BEFORE_START = "cancelled before it started"
# What each named retry selection picks, by the state of an endpoint's current run.
RETRY_SELECTIONS: dict[str, frozenset[ResponseState]] = {
    "failed": frozenset(
        {
            ResponseState.FAILED,
            ResponseState.TIMED_OUT,
            ResponseState.CANCELLED,
            ResponseState.SKIPPED,
            ResponseState.MISSING,
        }
    ),
    "missing": frozenset({ResponseState.MISSING}),
    "unfinished": frozenset({ResponseState.CANCELLED, ResponseState.SKIPPED, ResponseState.MISSING}),
    "all": frozenset(state for state in ResponseState if state.final),
}


@dataclasses.dataclass(frozen=True)
class RetryPlan:
    """The endpoints a retry starts run `run` for; `repeated`: an earlier identical request
    did it already (`after_run`), so nothing starts."""

    endpoints: list[str]
    run: int
    repeated: bool = False


def plan_retry(rows: dict[str, RunRow], selection: str | list[str], after_run: int | None) -> RetryPlan:
    """Which endpoints of a task (`rows`, by endpoint) a retry selects, and the new run's number.

    `selection` is a name of RETRY_SELECTIONS or a list of endpoint names. Runs are numbered
    per task: every endpoint a retry selects gets the same new run, one more than the task's
    latest. InvalidTask for a name that is not one of the task's endpoints, TaskConflict when a
    selected endpoint is still open or nothing is selected.
    """
    latest = max((row.run for row in rows.values()), default=0)
    if isinstance(selection, list):
        unknown = sorted(set(selection) - set(rows))
        if unknown:
            raise InvalidTask("endpoint %r is not one of the task's endpoints" % unknown[0])
        chosen = [endpoint for endpoint in rows if endpoint in set(selection)]
        if after_run is not None and chosen and all(rows[endpoint].run > after_run for endpoint in chosen):
            return RetryPlan(chosen, latest, repeated=True)
        still_open = [endpoint for endpoint in chosen if not rows[endpoint].state.final]
    else:
        if after_run is not None and latest > after_run:
            return RetryPlan([], latest, repeated=True)
        chosen = [endpoint for endpoint, row in rows.items() if row.state in RETRY_SELECTIONS[selection]]
        still_open = []
    if still_open:
        endpoint = still_open[0]
        raise TaskConflict(
            "endpoint %r is still %s: retry it once its run is over" % (endpoint, rows[endpoint].state.value)
        )
    if not chosen:
        raise TaskConflict("no endpoint of the task is %s: nothing to retry" % _selection_name(selection))
    return RetryPlan(chosen, latest + 1)


def _selection_name(selection: str | list[str]) -> str:
    return "selected" if isinstance(selection, list) else "in selection %r" % selection


def check_cancel(cancel_requested: bool, states: Iterable[ResponseState]) -> bool:
    """Whether a cancel has something to record (False: it was requested already, answer the
    same again); TaskConflict for a task that settled without ever being cancelled."""
    if cancel_requested:
        return False
    if is_settled(states):
        raise TaskConflict("the task is settled and was never cancelled: nothing to cancel")
    return True


def skipped_by_cancel(state: ResponseState) -> bool:
    """Whether a cancel makes a run in this state `skipped` (it has not started)."""
    return state in (ResponseState.QUEUED, ResponseState.RECEIVED)
