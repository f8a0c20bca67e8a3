"""`python -m tasker.cli.entry NAME ...`: what the scripts in bin/ run.

Only the named entry point's module is imported, so a manager never loads Tornado and the
API never loads supervisor.
"""

from __future__ import annotations

import importlib
import sys

ENTRY_POINTS = {
    "api": ("tasker.cli.api", "main_entry"),
    "manager": ("tasker.cli.manager", "main_entry"),
    "initialize": ("tasker.cli.initialize", "main_entry"),
    "supervisord": ("tasker.cli.supervisor", "supervisord_entry"),
    "supervisorctl": ("tasker.cli.supervisor", "supervisorctl_entry"),
}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in ENTRY_POINTS:
        sys.exit("usage: python -m tasker.cli.entry {%s} ..." % ",".join(ENTRY_POINTS))
    name = sys.argv.pop(1)
    sys.argv[0] = name
    module, function = ENTRY_POINTS[name]
    getattr(importlib.import_module(module), function)()
