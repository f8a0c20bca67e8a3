"""A handler module for the `cli_demo` task type in test mode: a run the `tasker` command can show.

It goes through `payload["steps"]` steps (default 4) of `payload["seconds"]` each (default 0.6):
at each it reports its progress and prints a line, so a live view has a percent, a message and
an output line to show. At the end it writes `payload["say"]` if given. An endpoint named in
`payload["fail_on"]` fails at the end (errnr 5), in every run or only in the runs listed in
`payload["fail_runs"]`. A cancelled run stops at its next step.
"""

from __future__ import annotations

import sys
import time


def handle_task(task, taskResponse):
    """Step, report, print; succeed, or fail on the endpoints the payload names."""
    payload = task.payload if isinstance(task.payload, dict) else {}
    steps, seconds = int(payload.get("steps", 4)), float(payload.get("seconds", 0.6))
    for step in range(steps):
        if task.cancelled():
            taskResponse.errnr, taskResponse.errmsg = 4, "stopped at step %d" % (step + 1)
            return taskResponse
        taskResponse.progress(100 * step // steps, "step %d of %d" % (step + 1, steps))
        print("%s: working on step %d of %d" % (taskResponse.endpoint, step + 1, steps), flush=True)
        time.sleep(seconds)
    sys.stdout.write(payload.get("say", ""))
    print("%s: all %d steps done" % (taskResponse.endpoint, steps), flush=True)
    failing = taskResponse.endpoint in payload.get("fail_on", [])
    if failing and task.run in payload.get("fail_runs", [task.run]):
        taskResponse.errnr, taskResponse.errmsg = 5, "step %d failed on %s" % (steps, taskResponse.endpoint)
    else:
        taskResponse.payload = {"steps": steps}
    return taskResponse
