"""The `worker` task type: waits a while (setting `wait`, seconds), then answers."""

from __future__ import annotations

import time


def handle_task(task, taskResponse):
    """Pretend to work for `wait` seconds, then answer the seed's payload."""
    time.sleep(float(task.settings.get("wait", 20)))
    taskResponse.payload = {"yeah": 1234123, "yiya": "yippie"}
    return taskResponse
