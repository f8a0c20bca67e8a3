"""The options and arguments several `tasker` commands share, declared once.

Names are checked as click reads them, by the API's rules (tasker.client.arguments), so that a
name the API would refuse exits 2 before any request is made.
"""

from __future__ import annotations

from typing import Any, Callable

import click

from tasker.client import arguments


def json_option(function: Any) -> Any:
    """`--json`: print the API's JSON instead of tables and lines."""
    return click.option("--json", "as_json", is_flag=True, help="Print the API's JSON answer.")(function)


def checked(check: Callable[..., Any], *args: Any) -> Callable[[click.Context, click.Parameter, Any], Any]:
    """A click callback that checks a value as `check(value, *args)` does, before any request."""
    return lambda ctx, param, value: value if value is None else check(value, *args)


TYPE_ARGUMENT = click.argument("task_type", metavar="TYPE", callback=checked(arguments.task_type_value))
ID_ARGUMENT = click.argument("identifier", metavar="ID", callback=checked(arguments.name_value, "ID"))


def task_arguments(function: Any) -> Any:
    """`TYPE ID`: the task a command is about."""
    return TYPE_ARGUMENT(ID_ARGUMENT(function))


def wait_option(function: Any) -> Any:
    """`--wait`: follow the task until it settles; exit by its outcome."""
    help_text = "Follow the task until it settles (a live table on a terminal), and exit by its outcome."
    return click.option("--wait", "-w", is_flag=True, help=help_text)(function)
