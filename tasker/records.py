"""Tasks and responses as they travel between storage, API, messaging and manager: typed records.

Storage builds them from rows; the API shows them with `view()`; the publisher encodes a
task's message from them. Times are naive UTC datetimes, shown as `YYYY-MM-DD HH:MM:SS`.
Payloads are JsonText: kept as the text they were stored as (`payload.value()` parses one).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from tasker.clock import format_time
from tasker.jsontext import JsonText, as_json_text
from tasker.lifecycle import Limits, count_states, is_settled, seed_status
from tasker.status import ResponseState, TaskStatus

# The optional limits a task may carry, shown only when it has them.
LIMIT_KEYS = ("timeout", "max_concurrency", "max_errors")


@dataclasses.dataclass(frozen=True)
class NewTask:
    """A validated request to create a task; `endpoints` None means every registered endpoint."""

    type: str
    identifier: str
    payload: JsonText
    endpoints: list[str] | None
    # Seconds one endpoint's run may take (None: the type's manager.execution_timeout).
    timeout: float | None = None
    # At most this many endpoints run it at once; more failures than this stop the rest.
    max_concurrency: int | str | None = None
    max_errors: int | str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "payload", as_json_text(self.payload))


@dataclasses.dataclass(frozen=True)
class TaskRecord:
    """A stored task: what a client asked, for which endpoints, and where it stands."""

    id: int
    identifier: str
    type: str
    payload: JsonText
    endpoints: tuple[str, ...]
    status: TaskStatus
    start_time: dt.datetime
    last_modified_time: dt.datetime
    deadline: dt.datetime
    # When a cancel was asked for; None: never (or a retry since).
    cancel_requested: dt.datetime | None = None
    timeout: float | None = None
    max_concurrency: int | str | None = None
    max_errors: int | str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "payload", as_json_text(self.payload))

    @property
    def limits(self) -> Limits:
        """The task's max_concurrency and max_errors."""
        return Limits(self.max_concurrency, self.max_errors)

    def view(self) -> dict[str, Any]:
        """The task as the API shows it (the seed's keys first)."""
        shown = {
            "id": self.id,
            "identifier": self.identifier,
            "type": self.type,
            "payload": self.payload,
            "endpoints": list(self.endpoints),
            "status": self.status.value,
            "start_time": format_time(self.start_time),
            "last_modified_time": format_time(self.last_modified_time),
            "deadline": format_time(self.deadline),
        }
        for key in LIMIT_KEYS:
            if getattr(self, key) is not None:
                shown[key] = getattr(self, key)
        if self.cancel_requested is not None:
            shown["cancel_requested"] = format_time(self.cancel_requested)
        return shown

    def with_status(self, status: TaskStatus) -> TaskRecord:
        """The same task with another status."""
        return dataclasses.replace(self, status=status)


@dataclasses.dataclass(frozen=True)
class RunRecord:
    """One run of one endpoint's response: an earlier one kept by a retry, or (as a
    ResponseRecord) the current one."""

    endpoint: str
    run: int
    state: ResponseState
    attempts: int
    errnr: int
    errmsg: str | None
    payload: JsonText | None
    start_time: dt.datetime
    last_modified_time: dt.datetime
    deadline: dt.datetime
    # Its output's size in bytes as written, and its last 2,000 characters; None until a
    # manager recorded how it ended.
    output_size: int | None = dataclasses.field(default=None, kw_only=True)
    output_tail: str | None = dataclasses.field(default=None, kw_only=True)

    def view(self) -> dict[str, Any]:
        """The run as `?runs=all` shows it in its response's `runs`."""
        return {
            "run": self.run,
            "state": self.state.value,
            "status": seed_status(self.state),
            "errnr": self.errnr,
            "errmsg": self.errmsg,
            "payload": self.payload,
            "attempts": self.attempts,
            "start_time": format_time(self.start_time),
            "last_modified_time": format_time(self.last_modified_time),
            "deadline": format_time(self.deadline),
            "output_size": self.output_size,
            "output_tail": self.output_tail,
        }


# A response's keys as the API shows them: the seed's, then state, run, deadline, progress, output.
RESPONSE_KEYS = (
    "id",
    "task_id",
    "endpoint",
    "status",
    "errnr",
    "errmsg",
    "payload",
    "attempts",
    "start_time",
    "last_modified_time",
    "state",
    "run",
    "deadline",
    "progress",
    "progress_message",
    "output_size",
    "output_tail",
)


@dataclasses.dataclass(frozen=True)
class ResponseRecord(RunRecord):
    """One endpoint's response to a task, as of its current run."""

    id: int
    task_id: int
    # The latest progress its handler reported (percent, message); None before any.
    progress: float | None = None
    progress_message: str | None = None

    def view(self) -> dict[str, Any]:
        """The response as the API shows it: the seed's keys, then state, run, deadline, progress
        and output."""
        shown = dict(super().view(), id=self.id, task_id=self.task_id, endpoint=self.endpoint)
        shown.update(progress=self.progress, progress_message=self.progress_message)
        return {key: shown[key] for key in RESPONSE_KEYS}


def task_read_view(
    task: TaskRecord, responses: list[ResponseRecord], runs: list[RunRecord] | None = None
) -> dict[str, Any]:
    """`GET /<type>/<identifier>`: the task with its counts and settled flag, and every response;
    with `runs` (`?runs=all`), each response lists its earlier runs, oldest first."""
    states = [response.state for response in responses]
    task_view = dict(task.view(), counts=count_states(states), settled=is_settled(states))
    shown = [response.view() for response in responses]
    if runs is not None:
        for response, view in zip(responses, shown, strict=True):
            view["runs"] = [run.view() for run in runs if run.endpoint == response.endpoint]
    return {"task": task_view, "taskResponseList": shown}
