"""A run's receipt, start and outcome, and the task status that follows from its runs."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
from typing import Iterable

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
