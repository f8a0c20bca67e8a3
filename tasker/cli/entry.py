"""`python -m tasker.cli.entry NAME ...`: what the scripts in bin/ run."""

from __future__ import annotations

import sys

from tasker.cli import api, initialize, manager, supervisor

ENTRY_POINTS = {
    "api": api.main_entry,
    "manager": manager.main_entry,
    "initialize": initialize.main_entry,
    "supervisord": supervisor.supervisord_entry,
    "supervisorctl": supervisor.supervisorctl_entry,
}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in ENTRY_POINTS:
        sys.exit("usage: python -m tasker.cli.entry {%s} ..." % ",".join(ENTRY_POINTS))
    name = sys.argv.pop(1)
    sys.argv[0] = name
    ENTRY_POINTS[name]()
