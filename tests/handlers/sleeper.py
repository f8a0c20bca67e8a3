"""A handler module that sleeps as long as the task's payload says, for tests of long tasks."""

from __future__ import annotations

import time


def handle_task(task, taskResponse):
    """Sleep `payload["seconds"]`, then answer how long it slept."""
    seconds = float(task.payload.get("seconds", 0))
    time.sleep(seconds)
    taskResponse.payload = {"slept": seconds}
    return taskResponse
