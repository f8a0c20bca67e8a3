"""The states a task and each endpoint's run go through, as enums in one place.

The rules that move them live in `tasker.lifecycle`.
"""

from __future__ import annotations

import enum


class TaskStatus(str, enum.Enum):
    """Where a task stands as a whole."""

    CREATED = "CREATED"  # stored, not yet confirmed by the broker for every endpoint
    SENT = "SENT"  # the broker holds it; runs are under way
    DONE = "DONE"  # every endpoint's current run is final and none is missing
    INCOMPLETE = "INCOMPLETE"  # an endpoint of the current runs missed its delivery deadline
    CANCELLED = "CANCELLED"  # a cancel was requested and nothing runs any more


class ResponseStatus(enum.IntEnum):
    """The seed's view of one endpoint's response: still going, or finished."""

    CREATED = 0
    FINISHED = 1


class ResponseState(str, enum.Enum):
    """Where one endpoint's current run stands."""

    QUEUED = "queued"  # sent (or being sent), not yet received
    RECEIVED = "received"  # the manager recorded it; waiting behind another task or for a slot
    RUNNING = "running"  # the handler runs
    SUCCEEDED = "succeeded"  # the handler returned errnr 0
    FAILED = "failed"  # errnr not 0: the handler's code, or 1 when it raised, died or returned junk
    TIMED_OUT = "timed_out"  # stopped at its time limit
    CANCELLED = "cancelled"  # stopped by a cancel while running
    SKIPPED = "skipped"  # never started: cancelled before it began, or held back by max_errors
    MISSING = "missing"  # not received before its delivery deadline; never starts afterwards

    @property
    def final(self) -> bool:
        """Whether nothing more happens to this run."""
        return self not in OPEN_STATES


OPEN_STATES = frozenset({ResponseState.QUEUED, ResponseState.RECEIVED, ResponseState.RUNNING})


class ErrNr(enum.IntEnum):
    """The errnr values tasker itself sets; handlers may return others of their own."""

    SUCCESS = 0
    GENERAL_ERROR = 1
