"""The work horse: runs a task type's handler module in a child process, so that a run can be stopped.

A `WorkHorse` serves one handler module. By default it keeps one persistent child process
(`tasker.manager.workhorse_child`) that imports the module once and performs runs one at a
time; a child that dies, or is stopped, is replaced at the next run. With `fresh=True` every
run gets a child of its own instead: slower by far (see bench/workhorse.py), but no run sees
what an earlier one left in the process. The child is kept in the work horse's stable
(`tasker.manager.workhorse_stable`); this module holds the run in hand.

Two ways to drive it, from one thread:
- `perform(job)` blocks until the run has ended and returns its `Outcome`;
- `begin(job)` starts a run and returns its process group; then wait until `fileno()` is
  readable or the monotonic time `next_check()` has come, and call `collect()`, which never
  blocks, until it returns the `Outcome`.
`cancel()`, `output_so_far()` and `take_output()` may be called from any thread.

What a run writes to stdout and stderr (its subprocesses too) and logs is its output:
`Outcome.output`, kept in full up to `max_output` bytes, else its start and end around a
marker. While it runs, `output_so_far()` shows its tail, and `take_output()` hands out what is
sure to be kept, to be stored as it comes; after it, the rest.

Each child leads its own session and process group: the manager's SIGTERM (supervisorctl
stop) does not reach it, so the run in hand finishes. `cancel()` first tells the handler
(`task.cancelled()`); a timeout, or a cancelled run still going after its grace, gets SIGTERM
to the group, then SIGKILL `grace` seconds later (or as soon as the child has exited, for what
it left behind). The child dies with its manager (PR_SET_PDEATHSIG); what it left behind is
ended by the next manager with `kill_group()`, given the group id `begin()` returned.
PR_SET_PDEATHSIG follows the thread that started the child, not the process: drive the work
horse from a thread that lives as long as it does.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
import time
from typing import Any, Callable

from tasker.errors import ConfigError, WorkHorseError
from tasker.manager.workhorse_job import Job, Outcome, RunOutput, RunState
from tasker.manager.workhorse_output import OutputKeeper
from tasker.manager.workhorse_process import kill_group
from tasker.manager.workhorse_run import Run
from tasker.manager.workhorse_stable import Stable

__all__ = ["Job", "Outcome", "RunOutput", "RunState", "WorkHorse", "kill_group"]
log = logging.getLogger(__name__)
DEFAULT_GRACE = 10.0
DEFAULT_MAX_RESULT = 4 * 2**20
DEFAULT_MAX_OUTPUT = 16 * 2**20
OUTPUT_PIECE = 2**20
_JOB_FIELDS = [field.name for field in dataclasses.fields(Job) if field.name != "timeout"]
_STARTING = object()  # in place of the run in hand while begin() starts it


class WorkHorse:
    """Runs `handle_task` of one handler module in a child process, one run at a time."""

    def __init__(
        self,
        module_name: str,
        settings: dict[str, Any],
        *,
        grace: float = DEFAULT_GRACE,
        max_result: int = DEFAULT_MAX_RESULT,
        max_output: int = DEFAULT_MAX_OUTPUT,
        fresh: bool = False,
        on_start: Callable[[int], None] | None = None,
        on_progress: Callable[[float, str | None], None] | None = None,
    ) -> None:
        """`settings`: the type's handler_settings (JSON data); `grace`: seconds from a cancel to
        SIGTERM, and from SIGTERM to SIGKILL; `max_result`: the largest result payload, in bytes of
        JSON; `max_output`: the bytes of a run's output kept in full (beyond them, half from its
        start, half from its end); `fresh`: a new child per run; `on_start(pgid)`: called as each
        run starts, with the child's process group, before the handler can start;
        `on_progress(percent, message)`: the handler reports progress.
        """
        try:
            json.dumps(settings, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ConfigError("the handler settings of %s are not JSON data: %s" % (module_name, exc)) from exc
        if max_output < 0:
            raise ConfigError("max_output must not be negative")
        self.module_name = module_name
        self.settings = settings
        self.grace = grace
        self.max_result = max_result
        self.max_output = max_output
        self.fresh = fresh
        self.on_start = on_start
        self.on_progress = on_progress
        self._lock = threading.Lock()
        self._stable = Stable(module_name, max_result, fresh, self._lock)
        self._run: Run | object | None = None  # the run in hand, or _STARTING
        self._output: OutputKeeper | None = None  # of the run in hand, or of the last one
        self._performing = False  # a perform() is under way (it ends the child if closed meanwhile)
        self._closed = False
        self._seq = 0

    @property
    def pgid(self) -> int | None:
        """The process group of the current child, running or idle; None if there is none."""
        return self._stable.pgid

    def start(self, timeout: float = 60.0) -> None:
        """Start the child and wait until it has imported the module (a fresh one then ends).

        Raises HandlerModuleError if the module cannot be imported or lacks `handle_task`,
        WorkHorseError if no child can be started or it does not get ready within `timeout`.
        """
        if self._closed:
            raise WorkHorseError("the work horse of %s is closed" % self.module_name)
        self._stable.start(timeout)

    def perform(self, job: Job) -> Outcome:
        """Run the handler for `job` in the child and return how the run ended; blocks till then.

        Never raises for what the handler does; raises WorkHorseError if no child can be
        started or the work horse is closed, and what `on_start` raises.
        """
        self._begin(job, performing=True)
        try:
            while True:
                outcome = self.collect()
                if outcome is not None:
                    return outcome
                check = self.next_check()
                self._stable.wait(-1 if check is None else max(0.0, check - time.monotonic()))
        finally:
            with self._lock:
                self._performing = False
                closed = self._closed
            if closed:
                self._stable.close(self.grace)

    def begin(self, job: Job) -> int:
        """Start a run of `job`; its child's process group. Then `collect()` until it has ended."""
        return self._begin(job, performing=False)

    def fileno(self) -> int:
        """A descriptor that is readable when `collect()` has something to do."""
        return self._stable.fileno()

    def next_check(self) -> float | None:
        """The `time.monotonic()` by which `collect()` must be called even if `fileno()` is not
        readable (a time limit, a grace ending); None if there is none."""
        run = self._run
        return run.next_check() if isinstance(run, Run) else None

    def collect(self) -> Outcome | None:
        """Take in what the child sent, enforce time limits and stops, without blocking: the
        outcome if the run has ended (no run is then in hand), else None."""
        run = self._run
        if not isinstance(run, Run):
            return None
        self._stable.drain()
        outcome = run.advance()
        if outcome is not None:
            if self.fresh or run.child.returncode is not None:
                self._stable.bury(run.child)
            with self._lock:
                self._run = None
        return outcome

    def cancel(self, grace: float | None = None) -> bool:
        """Cancel the run in hand (from any thread): the handler's `task.cancelled()` becomes true
        now; still running `grace` seconds later (default: the horse's), it is stopped like at a
        timeout, and ends `cancelled`. A handler that returns by itself ends `succeeded` if it
        succeeded, else `cancelled` with its errmsg. False if there is no run in hand (or it is
        being started), or it is being cancelled or stopped already."""
        with self._lock:
            run = self._run
            if not isinstance(run, Run):
                return False
            first = run.request_cancel(self.grace if grace is None else grace)
            self._stable.wake()
        return first

    def output_so_far(self) -> RunOutput | None:
        """The run in hand's output so far (from any thread, cheaply): its last 2,000 characters
        and its size in bytes; None if there is no run in hand."""
        with self._lock:
            run = self._run
        return run.output.so_far() if isinstance(run, Run) else None

    def take_output(self, limit: int = OUTPUT_PIECE) -> str:
        """The next piece of the output, at most `limit` bytes of UTF-8 (from any thread); "" if
        there is none now. While the run goes on, what is sure to be kept (its first
        `max_output / 2` bytes); once it ended, until the next `begin()`, the rest: the pieces,
        in order, are `Outcome.output.text`."""
        with self._lock:
            output = self._output
        return "" if output is None else output.take(limit)

    def close(self, kill: bool = False) -> None:
        """End the child, and accept no more runs: an idle child exits cleanly; a run in hand
        has its group killed if `kill` (a `perform()` in another thread then returns it as
        cancelled), else is finished first by a `perform()` under way, else is an error."""
        with self._lock:
            self._closed = True
            run, performing = self._run, self._performing
        if run is not None and performing:  # the perform() under way ends the child
            if kill:
                self._kill(Outcome.failed("killed: the work horse is closing", RunState.CANCELLED))
            return
        if isinstance(run, Run):
            if not kill:
                raise WorkHorseError("a run is in hand: collect() its outcome first, or close(kill=True)")
            log.warning("task %s on %s: killing its process group: closing", run.job.identifier, run.job.endpoint)
            self._stable.bury(run.child)
            with self._lock:
                self._run = None
        self._stable.close(0 if kill else self.grace)

    def _begin(self, job: Job, performing: bool) -> int:
        with self._lock:
            if self._closed:
                raise WorkHorseError("the work horse of %s is closed" % self.module_name)
            if self._run is not None:
                raise WorkHorseError("the work horse of %s has a run in hand already" % self.module_name)
            self._run, self._output = _STARTING, None
            self._performing = performing
        child = None
        try:
            child = self._stable.ready()
            self._seq += 1
            output = OutputKeeper(self.max_output)
            run = Run(job, child, self._seq, self.grace, self._lock, self.on_progress, output)
            if self.on_start is not None:
                self.on_start(child.pgid)
            child.send(self._message(job, run.seq))
        except BaseException:
            if self.fresh and child is not None:
                self._stable.bury(child)
            with self._lock:
                self._run = None
                self._performing = False
            raise
        with self._lock:
            self._run, self._output = run, output
        return child.pgid

    def _message(self, job: Job, seq: int) -> dict[str, Any]:
        fields = {name: getattr(job, name) for name in _JOB_FIELDS}
        return {"op": "run", "seq": seq, **fields, "settings": self.settings}

    def _kill(self, outcome: Outcome) -> None:
        """Have the run in hand, if any, stopped with SIGKILL at once (as `outcome` if it is the first stop)."""
        with self._lock:
            if isinstance(self._run, Run):
                self._run.request_stop(outcome, kill=True)
                self._stable.wake()
