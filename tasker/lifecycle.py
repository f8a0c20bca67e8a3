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
- The task's status follows from its responses: `INCOMPLETE` once one is missing, `DONE` once
  all are final, `CANCELLED` once all are final after a cancel was requested.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import re
from typing import Iterable

from tasker.errors import InvalidTask, TaskConflict
from tasker.status import ErrNr, ResponseState, ResponseStatus, TaskStatus

MISSING_ERRMSG = "not received before its delivery deadline"
CRASHED_ERRMSG = "the run's manager stopped %s while holding it (manager.max_crashes)"


@dataclasses.dataclass(frozen=True)
class RunRow:
    """What the lifecycle needs to know of one endpoint's response."""

    state: ResponseState
    run: int
    attempts: int
    deadline: dt.datetime


class Receipt(str, enum.Enum):
    """What a manager does with a task message that reached it."""

    RUN = "run"  # received in time, or received before and not finished: run the handler
    FINISHED = "finished"  # this run is final already: acknowledge only
    STALE = "stale"  # not received before the delivery deadline: never start it
    OTHER_RUN = "other_run"  # a copy of a run that is not the current one: acknowledge unperformed
    UNKNOWN = "unknown"  # no such task or endpoint in the database: set aside
    CRASHED = "crashed"  # its managers stopped holding it too often: record it failed, never run it


@dataclasses.dataclass(frozen=True)
class ReceiptDecision:
    """The receipt's verdict, the run's attempts after it, the state to store (None: no write),
    and for a run not to be performed again, why it failed."""

    receipt: Receipt
    attempts: int = 0
    state: ResponseState | None = None
    errmsg: str | None = None


def decide_receipt(row: RunRow | None, run: int, now: dt.datetime, max_crashes: int | None = None) -> ReceiptDecision:
    """Decide what a manager does with a message of run `run` for a response in `row`.

    Every delivery that reaches a manager without that manager holding its run already is an
    attempt: a redelivery after a crash, a stop, or a lost connection, or the renewal copy of a
    manager that died before the copy came back. A run received before and still open was let
    go by every earlier holder without an outcome; after `max_crashes` of those (None: no
    limit), it is failed instead of performed once more.
    """
    if row is None:
        return ReceiptDecision(Receipt.UNKNOWN)
    if run != row.run:
        return ReceiptDecision(Receipt.OTHER_RUN, row.attempts)
    if row.state.final:
        return ReceiptDecision(Receipt.FINISHED, row.attempts)
    if row.state is ResponseState.QUEUED:
        if now > row.deadline:
            return ReceiptDecision(Receipt.STALE, row.attempts)
        return ReceiptDecision(Receipt.RUN, row.attempts + 1, ResponseState.RECEIVED)
    if crashed_too_often(row, max_crashes):
        return ReceiptDecision(Receipt.CRASHED, row.attempts + 1, row.state, crashed_errmsg(row.attempts))
    return ReceiptDecision(Receipt.RUN, row.attempts + 1, ResponseState.RECEIVED)


def crashed_too_often(row: RunRow, max_crashes: int | None) -> bool:
    """Whether a run its last manager was running when it went away has been delivered
    `max_crashes` times (None: no limit) without an outcome."""
    return max_crashes is not None and row.state is ResponseState.RUNNING and row.attempts >= max_crashes


def crashed_errmsg(crashes: int) -> str:
    """The errmsg of a run failed because its managers stopped `crashes` times holding it."""
    return CRASHED_ERRMSG % ("once" if crashes == 1 else "%d times" % crashes)


def may_start(row: RunRow | None, run: int) -> bool:
    """Whether the handler may start on run `run` of this response (it was received, not final)."""
    return row is not None and row.run == run and row.state in (ResponseState.RECEIVED, ResponseState.RUNNING)


def may_finish(row: RunRow | None, run: int) -> bool:
    """Whether an outcome of run `run` may be stored: it is the current run and not final yet."""
    return row is not None and row.run == run and not row.state.final


def is_missed(row: RunRow, now: dt.datetime) -> bool:
    """Whether the run was not received before its delivery deadline."""
    return row.state is ResponseState.QUEUED and now > row.deadline


def outcome_state(errnr: int) -> ResponseState:
    """The final state of a run whose handler answered `errnr`."""
    return ResponseState.SUCCEEDED if errnr == ErrNr.SUCCESS else ResponseState.FAILED


def seed_status(state: ResponseState) -> int:
    """The seed's response `status`: 1 once the run is final, else 0."""
    return ResponseStatus.FINISHED.value if state.final else ResponseStatus.CREATED.value


def is_settled(states: Iterable[ResponseState]) -> bool:
    """Whether no endpoint is queued, received or running."""
    return all(state.final for state in states)


def count_states(states: Iterable[ResponseState]) -> dict[str, int]:
    """How many endpoints are in each state; every state a key, zeros included."""
    counts = dict.fromkeys((state.value for state in ResponseState), 0)
    for state in states:
        counts[state.value] += 1
    return counts


def task_status(current: TaskStatus, states: Iterable[ResponseState], cancel_requested: bool = False) -> TaskStatus:
    """The task's status given its responses' states.

    CREATED and SENT are about the broker and stay as they are while runs are open; a task
    whose runs settle is DONE (or CANCELLED after a cancel), INCOMPLETE as soon as one run is
    missing; a settled task whose runs open again (a retry) is SENT.
    """
    states = list(states)
    settled = is_settled(states)
    if cancel_requested and settled:
        return TaskStatus.CANCELLED
    if ResponseState.MISSING in states:
        return TaskStatus.INCOMPLETE
    if settled:
        return TaskStatus.DONE
    if current in (TaskStatus.DONE, TaskStatus.INCOMPLETE, TaskStatus.CANCELLED):
        return TaskStatus.SENT
    return current


def after_sent(current: TaskStatus) -> TaskStatus:
    """The status once the broker confirmed the task for every endpoint."""
    return TaskStatus.SENT if current is TaskStatus.CREATED else current


# Retry and cancel ------------------------------------------------------------------------------

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


# Limits on a task: max_concurrency and max_errors -----------------------------------------------

# A limit given as a percentage of the task's endpoints.
PERCENT = re.compile(r"^(100|[1-9]?[0-9])%$")
MAX_LIMIT = 1_000_000  # the largest max_concurrency or max_errors given as a number
HELD_BACK_ERRMSG = "not started: %d endpoints failed or timed out, more than max_errors allows (%d)"


class StartVerdict(str, enum.Enum):
    """What a manager does with a run of a limited task it is about to start."""

    GO = "go"  # a slot was free: it is taken, start the handler
    WAIT = "wait"  # every slot is taken: keep the run `received`, ask again soon
    SKIP = "skip"  # max_errors was exceeded: the run is `skipped`, never start it
    OVER = "over"  # the run is not this one's to start any more (cancelled, retried, final)


def limit_count(value: int | str | None, selected: int, round_up: bool) -> int | None:
    """A limit (an int, or a percentage string such as "25%") as a number of endpoints out of
    `selected`: a percentage rounds up (concurrency, at least 1) or down (errors)."""
    if value is None or isinstance(value, int):
        return value
    percent = int(value.rstrip("%"))
    if round_up:
        return max(1, -(-selected * percent // 100))
    return selected * percent // 100


@dataclasses.dataclass(frozen=True)
class Limits:
    """A task's max_concurrency and max_errors as its client gave them (None: no limit)."""

    max_concurrency: int | str | None = None
    max_errors: int | str | None = None

    def __bool__(self) -> bool:
        return self.max_concurrency is not None or self.max_errors is not None


def errors_exceeded(limits: Limits, states: list[ResponseState]) -> int | None:
    """The number of failed or timed out current runs, if more than max_errors allows; else None."""
    allowed = limit_count(limits.max_errors, len(states), round_up=False)
    errors = sum(1 for state in states if state in (ResponseState.FAILED, ResponseState.TIMED_OUT))
    return errors if allowed is not None and errors > allowed else None


def held_back(limits: Limits, states: dict[str, ResponseState]) -> tuple[list[str], str | None]:
    """The endpoints not started yet that max_errors holds back (they become `skipped`), and
    the errmsg they get."""
    errors = errors_exceeded(limits, list(states.values()))
    if errors is None:
        return [], None
    allowed = limit_count(limits.max_errors, len(states), round_up=False)
    waiting = [endpoint for endpoint, state in states.items() if skipped_by_cancel(state)]
    return waiting, HELD_BACK_ERRMSG % (errors, allowed)


def decide_start(limits: Limits, endpoint: str, run: int, rows: dict[str, RunRow]) -> StartVerdict:
    """Whether `endpoint` may start run `run` of a limited task whose responses are `rows`.

    Errors first: once more than max_errors runs failed, nothing more starts. Then the slots:
    a run starts while fewer than max_concurrency endpoints run the task.
    """
    own = rows.get(endpoint)
    if own is None or own.run != run or own.state not in (ResponseState.RECEIVED, ResponseState.RUNNING):
        return StartVerdict.OVER
    if own.state is ResponseState.RUNNING:
        return StartVerdict.GO  # its slot is taken already
    if errors_exceeded(limits, [row.state for row in rows.values()]) is not None:
        return StartVerdict.SKIP
    slots = limit_count(limits.max_concurrency, len(rows), round_up=True)
    running = sum(1 for name, row in rows.items() if name != endpoint and row.state is ResponseState.RUNNING)
    return StartVerdict.WAIT if slots is not None and running >= slots else StartVerdict.GO
