"""Showing a task while it goes on: a live table on a terminal, one line per change when piped.

Both take the views a `Follower` yields and return the last one (settled) for the exit status.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Callable

from rich.console import Console, RenderableType
from rich.live import Live

from tasker.client.api_client import ApiClient
from tasker.client.errors import Interrupted
from tasker.client.follow import Follower
from tasker.client.outcome import task_exit_status
from tasker.client.render import print_json, stdout_console, task_table, write_line
from tasker.client.task_view import FINAL, change_text, responses, seconds_since_start, summary_text

REFRESH_PER_SECOND = 4


class LiveTable:
    """A rich `Live` table of one task, redrawn as views come and four times a second (the
    elapsed time moves); the final table stays on the screen."""

    def __init__(self, console: Console, clock: Callable[[], float] = time.monotonic) -> None:
        self.console = console
        self.clock = clock
        self.view: dict | None = None
        self.follower: Follower | None = None  # its notice shows while it tries the API again
        self._origin: float | None = None  # when the task started, on `clock`
        self._elapsed: float | None = None  # frozen once it settled

    def show(self, follower: Follower) -> dict:
        """Draw the task until it settles; the settled view."""
        with Live(
            console=self.console,
            get_renderable=self.render,
            refresh_per_second=REFRESH_PER_SECOND,
            transient=False,
        ) as live:
            self.follower = follower
            for view in follower.views():
                self.take(view)
                live.refresh()
        assert self.view is not None
        return self.view

    def take(self, view: dict) -> None:
        """Show `view` from now on. The elapsed time runs on this host's clock from the task's
        start as the first view tells it, so it never goes back, and stops once it settled."""
        self.view = view
        if self._origin is None:
            self._origin = self.clock() - (seconds_since_start(view) or 0.0)
        if view["task"].get("settled") and self._elapsed is None:
            self._elapsed = self.clock() - self._origin

    def render(self) -> RenderableType:
        """The table as it is now."""
        if self.view is None or self._origin is None:
            return ""
        elapsed = self._elapsed if self._elapsed is not None else self.clock() - self._origin
        notice = self.follower.notice if self.follower is not None and self._elapsed is None else ""
        return task_table(self.console, self.view, summary_text(self.view, elapsed), notice)


def print_changes(follower: Follower, now: Callable[[], datetime] = datetime.now) -> dict:
    """One line per change of an endpoint (`12:00:01 web1 running 40% copying files`), then the
    summary line; the settled view."""
    shown: dict[str, str] = {}
    view: dict | None = None
    for view in follower.views():
        for line in new_lines(view, shown):
            write_line("%s %s" % (now().strftime("%H:%M:%S"), line))
    assert view is not None
    write_line(summary_text(view, seconds_since_start(view)))
    return view


def new_lines(view: dict, shown: dict[str, str]) -> list[str]:
    """The lines of the responses that changed since `shown` (updated in place). An ending
    known from an event alone waits for the GET that brings its errmsg: one line, not two."""
    lines = []
    for response in responses(view):
        if response.get("from_event") and response.get("state") in FINAL:
            continue
        text = change_text(response)
        if shown.get(response.get("endpoint")) != text:
            shown[response.get("endpoint")] = text
            lines.append(text)
    return lines


def follow_task(client: ApiClient, task_type: str, identifier: str, as_json: bool) -> int:
    """Follow a task until it settles, shown as stdout allows (a live table on a terminal,
    lines piped, the final JSON with `as_json`); the exit status of its outcome."""
    follower = Follower(client, task_type, identifier)
    try:
        if as_json:
            view = list(follower.views())[-1]
            print_json(view)
        elif (console := stdout_console()).is_terminal:
            view = LiveTable(console).show(follower)
        else:
            view = print_changes(follower)
    except KeyboardInterrupt:
        raise Interrupted("interrupted; the task goes on (tasker watch %s %s)" % (task_type, identifier)) from None
    return task_exit_status(view)
