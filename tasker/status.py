"""The states a task and a task-response go through (SPEC 3.4)."""

from __future__ import annotations

import enum


class TaskStatus(str, enum.Enum):
    """Where a task stands as a whole."""

    CREATED = "CREATED"
    SENT = "SENT"
    DONE = "DONE"
    INCOMPLETE = "INCOMPLETE"


class ResponseStatus(enum.IntEnum):
    """Where one endpoint's response to a task stands."""

    CREATED = 0
    FINISHED = 1


class ErrNr(enum.IntEnum):
    """The errnr values tasker itself sets; handlers may return others of their own."""

    SUCCESS = 0
    GENERAL_ERROR = 1
