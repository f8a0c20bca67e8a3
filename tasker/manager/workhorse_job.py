"""What a work horse is given to run (`Job`) and what it answers (`Outcome`, in a `RunState`, with
the run's `RunOutput`)."""

from __future__ import annotations

import dataclasses
import enum
from typing import Any, Callable, Protocol

from tasker.manager.handler_api import shorten
from tasker.status import ErrNr


class RunState(enum.StrEnum):
    """How a run ended."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"


@dataclasses.dataclass(frozen=True)
class Job:
    """Everything the child needs for one run; `timeout` in seconds, None for none."""

    task_id: int
    identifier: str
    type: str
    payload: Any
    endpoints: list[str]
    endpoint: str
    run: int
    attempts: int
    timeout: float | None = None


@dataclasses.dataclass(frozen=True)
class RunOutput:
    """What a run wrote to stdout and stderr and logged: `text` as kept, `size` in bytes of UTF-8
    as written (what was left out included), `truncated` when something was left out."""

    text: str = ""
    size: int = 0
    truncated: bool = False


NO_OUTPUT = RunOutput()


@dataclasses.dataclass(frozen=True)
class Outcome:
    """How a run ended: `state` follows `errnr` (0: succeeded) unless it timed out or was cancelled."""

    state: RunState
    errnr: int
    errmsg: str | None
    payload: Any = None
    output: RunOutput = NO_OUTPUT

    @classmethod
    def failed(cls, errmsg: str, state: RunState = RunState.FAILED) -> Outcome:
        return cls(state, int(ErrNr.GENERAL_ERROR), shorten(errmsg), None)


class Horse(Protocol):
    """What the manager needs of a work horse: one run at a time, driven without blocking.

    `begin` starts a run and returns its process group; `collect` (called when `fileno()` is
    readable or `next_check()` has passed) returns its Outcome once it ended, else None.
    `cancel` asks the run in hand to stop (the handler sees `task.cancelled()`), stopping it
    after `grace` seconds; `output_so_far` shows the output's tail while the run goes on;
    `take_output` hands out the kept output piece by piece, to be stored as it comes."""

    @property
    def pgid(self) -> int | None: ...  # the process group of the current child, running or idle

    # Called with (percent, message) when the handler reports progress, from collect().
    on_progress: Callable[[float, str | None], None] | None

    def begin(self, job: Job) -> int | None: ...

    def fileno(self) -> int: ...

    def next_check(self) -> float | None: ...

    def collect(self) -> Outcome | None: ...

    def cancel(self, grace: float | None = None) -> bool: ...

    def output_so_far(self) -> RunOutput | None: ...

    def take_output(self, limit: int = ...) -> str: ...

    def close(self, kill: bool = False) -> None: ...
