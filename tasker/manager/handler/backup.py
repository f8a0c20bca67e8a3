"""The `backup` task type: waits a while (setting `wait`, seconds), then fails with errnr 32."""

from __future__ import annotations

import time


def handle_task(task, taskResponse):
    """Pretend to back up for `wait` seconds, then report that it could not."""
    time.sleep(float(task.settings.get("wait", 20)))
    taskResponse.errnr = 32
    taskResponse.errmsg = "could not backup!"
    return taskResponse
