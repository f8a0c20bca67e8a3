"""A handler module for the `chatty` task type in test mode: writes output, for tests of how
a run's output is stored and served.

In this order, each written through before the next: a line to stderr, a line logged through
`logging`, then `stdout_text(payload["bytes"])` to stdout. `seconds` makes it wait that long
after the stderr line; `fail_first` makes the first run on each endpoint fail (it remembers
it by a file in the payload's `dir`), with output that says so.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

log = logging.getLogger(__name__)
STDERR_LINE = "chatty: to stderr\n"
LOGGED = "chatty: logged"


def stdout_text(size: int) -> str:
    """Exactly `size` bytes of UTF-8: numbered lines with characters of two, three and four
    bytes (so that chunk borders fall inside them), ASCII at the end to make up the size."""
    lines, total, number = [], 0, 0
    while True:
        line = "%09d é€𝄞 chatty\n" % number
        length = len(line.encode("utf-8"))
        if total + length > size:
            break
        lines.append(line)
        total += length
        number += 1
    lines.append("x" * (size - total))
    return "".join(lines)


def handle_task(task, taskResponse):
    """Write to stderr, log, wait `seconds`, write `bytes` to stdout; fail the first run if asked."""
    sys.stderr.write(STDERR_LINE)
    sys.stderr.flush()
    log.info(LOGGED)
    time.sleep(float(task.payload.get("seconds", 0)))
    first = False
    if task.payload.get("fail_first"):
        marker = Path(task.payload["dir"]) / ("%s-%s" % (task.identifier, taskResponse.endpoint))
        first = not marker.exists()
        marker.touch()
    sys.stdout.write("first run\n" if first else stdout_text(int(task.payload.get("bytes", 0))))
    sys.stdout.flush()
    if first:
        taskResponse.errnr = 3
        taskResponse.errmsg = "the first run fails"
    else:
        taskResponse.payload = {"wrote": int(task.payload.get("bytes", 0))}
    return taskResponse
