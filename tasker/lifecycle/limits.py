"""Limits on a task: how many endpoints run it at once (max_concurrency), and how many of its
runs may fail or time out before the rest is skipped (max_errors)."""

from __future__ import annotations

import dataclasses
import enum
import re
from typing import AbstractSet

from tasker.lifecycle.operations import skipped_by_cancel
from tasker.lifecycle.runs import RunRow
from tasker.status import ResponseState

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


def decide_start(
    limits: Limits, endpoint: str, run: int, rows: dict[str, RunRow], dead: AbstractSet[str] = frozenset()
) -> StartVerdict:
    """Whether `endpoint` may start run `run` of a limited task whose responses are `rows`.

    Errors first: once more than max_errors runs failed, nothing more starts. Then the slots:
    a run starts while fewer than max_concurrency endpoints run the task. A run `running` on
    an endpoint in `dead` (its manager stopped heartbeating, see `liveness`) holds no slot.
    """
    own = rows.get(endpoint)
    if own is None or own.run != run or own.state not in (ResponseState.RECEIVED, ResponseState.RUNNING):
        return StartVerdict.OVER
    if own.state is ResponseState.RUNNING:
        return StartVerdict.GO  # its slot is taken already
    if errors_exceeded(limits, [row.state for row in rows.values()]) is not None:
        return StartVerdict.SKIP
    slots = limit_count(limits.max_concurrency, len(rows), round_up=True)
    running = sum(
        1 for name, row in rows.items() if name != endpoint and name not in dead and row.state is ResponseState.RUNNING
    )
    return StartVerdict.WAIT if slots is not None and running >= slots else StartVerdict.GO
