"""Time limit: a run of a type with `manager.execution_timeout.<type>` is stopped at that limit.

The work horse sends SIGTERM to the handler's process group at the limit, SIGKILL after
`manager.cancel_grace`; the run ends `timed_out`.
"""

from __future__ import annotations

import dataclasses

from tasker.hooks import Extension
from tasker.manager.workhorse import Job, Outcome


class TimeLimit(Extension):
    """Give each run its type's time limit, unless the run has one already."""

    def __init__(self, timeouts: dict[str, float]) -> None:
        self.timeouts = dict(timeouts)

    def prepare_run(self, job: Job) -> Job | Outcome:
        limit = self.timeouts.get(job.type)
        if job.timeout is not None or limit is None:
            return job
        return dataclasses.replace(job, timeout=limit)
