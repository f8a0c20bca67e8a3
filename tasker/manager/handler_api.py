"""What a handler module sees, `Task` and `TaskResponse`, and how its answer is checked.

A handler module defines `handle_task(task, taskResponse)`; the work horse's child process
calls it (see `tasker.manager.workhorse_child`, where `task.cancelled()` and
`taskResponse.progress()` come alive) and checks what it answered here: errnr a
32-bit int, a JSON payload, an errmsg of bounded length. A failure becomes errnr 1.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from tasker.status import ErrNr

ERRNR_MIN, ERRNR_MAX = -(2**31), 2**31 - 1
MAX_ERRMSG = 10_000


@dataclasses.dataclass
class Task:
    """The task as `handle_task` sees it; `settings` are the type's `manager.handler_settings`."""

    id: int
    identifier: str
    type: str
    payload: Any
    endpoints: list[str]
    settings: dict[str, Any]

    def cancelled(self) -> bool:
        """Whether this run was cancelled: a handler that checks it in its loop can stop cleanly,
        and should, soon (it is stopped after `manager.cancel_grace` seconds). Cheap to call."""
        return False


@dataclasses.dataclass
class TaskResponse:
    """This endpoint's response: the handler sets `payload`, `errnr` and `errmsg`."""

    task_id: int
    endpoint: str
    attempts: int
    payload: Any = None
    errnr: int = ErrNr.SUCCESS
    errmsg: str | None = None


def checked(response: TaskResponse) -> TaskResponse:
    """The response if the handler filled it in right, else a failed one saying what is wrong."""
    errnr = response.errnr
    if not isinstance(errnr, int) or isinstance(errnr, bool) or not ERRNR_MIN <= errnr <= ERRNR_MAX:
        return failed(response, "handler set errnr to %r, not an int of 32 bits" % (errnr,))
    try:
        json.dumps(response.payload, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:
        return failed(response, "handler set a payload that is not JSON: %s" % exc)
    if response.errmsg is not None:
        response.errmsg = shorten(str(response.errmsg))
    return response


def shorten(text: str) -> str:
    """`text` cut to MAX_ERRMSG characters, saying how long it was."""
    if len(text) <= MAX_ERRMSG:
        return text
    suffix = " ... (%d characters)" % len(text)
    return text[: MAX_ERRMSG - len(suffix)] + suffix


def failed(response: TaskResponse, message: str) -> TaskResponse:
    """Make the response a failure (errnr 1) with `message` as its errmsg."""
    response.payload = None
    response.errnr = ErrNr.GENERAL_ERROR
    response.errmsg = shorten(message)
    return response
