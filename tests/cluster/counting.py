"""The `worker` handler of the cluster suite: it writes down each execution before it answers.

One line per execution, `<identifier> <run> <attempts>`, appended to the file of its endpoint
in the payload's `dir`, so that the suite can count how often each task was performed on each
endpoint, whatever the database says. `TASKER_TEST_HANDLER_WAIT` (setting `wait`) makes each
execution take that long.
"""

from __future__ import annotations

import os
import time
from pathlib import Path


def handle_task(task, taskResponse):
    """Write the execution down, wait `wait` seconds, answer where it ran."""
    line = "%s %d %d\n" % (task.identifier, task.run, taskResponse.attempts)
    # One write with O_APPEND: a line is never split, even if two processes wrote at once.
    descriptor = os.open(Path(task.payload["dir"]) / taskResponse.endpoint, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(descriptor, line.encode())
    finally:
        os.close(descriptor)
    time.sleep(float(task.settings.get("wait", 0)))
    taskResponse.payload = {"endpoint": taskResponse.endpoint}
    return taskResponse
