"""A handler module for the `flaky` task type in test mode: fails the first time on the endpoints
its payload names (`fail_on`), succeeds on every other run; `seconds` makes each run take that long.

It remembers a first attempt by a file in the payload's `dir`, so a retry (a new run) succeeds.
"""

from __future__ import annotations

import time
from pathlib import Path


def handle_task(task, taskResponse):
    """Fail once on the endpoints named in `fail_on`, else answer where it ran."""
    started = time.time()
    time.sleep(float(task.payload.get("seconds", 0)))
    marker = Path(task.payload["dir"]) / ("%s-%s" % (task.identifier, taskResponse.endpoint))
    if taskResponse.endpoint in task.payload.get("fail_on", []) and not marker.exists():
        marker.touch()
        taskResponse.errnr = 7
        taskResponse.errmsg = "the first attempt on %s fails" % taskResponse.endpoint
        return taskResponse
    taskResponse.payload = {"endpoint": taskResponse.endpoint, "started": started, "ended": time.time()}
    return taskResponse
