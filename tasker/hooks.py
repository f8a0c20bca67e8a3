"""The extension seam: named points of the lifecycle that extensions hook into.

An extension subclasses `Extension` and overrides the hooks it needs; `Hooks` calls them in
order. The API calls `task_created`, `task_sent` and `deadline_passed`; the manager calls
`run_received`, `prepare_run`, `run_started` and `run_finished`. `prepare_run` may change a run before it
starts (a time limit) or settle it without running; the others only observe.
An extension that raises is logged and skipped: it never stops a task. The layout shows what
tasker can do: one extension a file under `tasker/extensions/`.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Iterable

if TYPE_CHECKING:
    from tasker.manager.workhorse import Job, Outcome
    from tasker.records import TaskRecord
    from tasker.storage import Missed

log = logging.getLogger(__name__)


class Extension:
    """Base class of extensions: every hook does nothing."""

    def task_created(self, task: TaskRecord) -> None:
        """The API stored a new task (status CREATED, every response queued)."""

    def task_sent(self, task: TaskRecord) -> None:
        """The broker confirmed a task for every endpoint."""

    def deadline_passed(self, missed: Missed) -> None:
        """Endpoints did not receive a task before its delivery deadline; it is INCOMPLETE."""

    def run_received(self, job: Job) -> None:
        """A manager recorded the receipt of a run it is going to perform (`job.attempts` says
        which delivery this is)."""

    def prepare_run(self, job: Job) -> Job | Outcome:
        """A manager is about to run `job`: return it (changed or not), or an Outcome to record
        instead of running it."""
        return job

    def run_started(self, job: Job, pgid: int | None) -> None:
        """The handler of `job` started in a child process of this process group."""

    def run_finished(self, job: Job, outcome: Outcome) -> None:
        """A run ended (its outcome is about to be recorded)."""


class Hooks:
    """The extensions of one process, called in order at each hook."""

    def __init__(self, extensions: Iterable[Extension] = ()) -> None:
        self.extensions = list(extensions)

    def notify(self, hook: str, *args: Any) -> None:
        """Call an observing hook on every extension; a failing extension is logged, not fatal."""
        for extension in self.extensions:
            try:
                getattr(extension, hook)(*args)
            except Exception:
                log.exception("extension %s failed in %s", type(extension).__name__, hook)

    def run_received(self, job: Job) -> None:
        """A manager recorded the receipt of a run it is going to perform (`job.attempts` says
        which delivery this is)."""

    def prepare_run(self, job: Job) -> Job | Outcome:
        """Pass `job` through every extension's `prepare_run`; stop at the first Outcome."""
        for extension in self.extensions:
            try:
                prepared = extension.prepare_run(job)
            except Exception:
                log.exception("extension %s failed in prepare_run", type(extension).__name__)
                continue
            if not _is_job(prepared):
                return prepared
            job = prepared
        return job


def _is_job(value: Any) -> bool:
    from tasker.manager.workhorse import Job

    return isinstance(value, Job)
