"""What the `tasker` command draws with rich: a task's endpoints, the task list, the endpoints.

On a terminal the tables have borders and colours; piped, they are plain columns (no box, no
colour, wide enough that no line wraps), for grep and awk. Text that comes from handlers or
clients (progress messages, output, errmsg) is shown without its control characters, and every
value from the API is a `Text` of its own, never read as rich markup: `[link=...]` or `[/]` in a
progress message or a host name shows as it is written.
"""

from __future__ import annotations

import json
import sys

from rich import box
from rich.console import Console, Group, RenderableType
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from tasker.client.task_view import FINAL, counts_text, last_line, printable, responses
from tasker.status import ResponseState, TaskStatus

STATE_STYLE = {
    ResponseState.QUEUED.value: "dim",
    ResponseState.RECEIVED.value: "cyan",
    ResponseState.RUNNING.value: "bold yellow",
    ResponseState.SUCCEEDED.value: "bold green",
    ResponseState.FAILED.value: "bold red",
    ResponseState.TIMED_OUT.value: "bold red",
    ResponseState.CANCELLED.value: "magenta",
    ResponseState.SKIPPED.value: "magenta",
    ResponseState.MISSING.value: "bold magenta",
}
STATUS_STYLE = {
    TaskStatus.DONE.value: "bold",
    TaskStatus.INCOMPLETE.value: "bold magenta",
    TaskStatus.CANCELLED.value: "magenta",
    TaskStatus.SENT.value: "yellow",
}
PIPED_WIDTH = 400  # piped tables are as wide as their content, up to this


def stdout_console() -> Console:
    """The console for stdout: a terminal's width and colours, or plain wide text when piped."""
    console = Console(highlight=False)
    if not console.is_terminal:
        console = Console(highlight=False, width=PIPED_WIDTH, no_color=True, soft_wrap=False)
    return console


def plain(value: object, limit: int = 200) -> Text:
    """A value from the API as a cell: on one line, without control characters, never markup."""
    return Text(printable(value, limit))


def state_text(state: str | None) -> Text:
    """A response state, in its colour."""
    return Text(printable(state or "?", 20), style=STATE_STYLE.get(state or "", ""))


def _table(console: Console, *columns: str) -> Table:
    table = Table(box=box.SIMPLE_HEAVY if console.is_terminal else None, pad_edge=False, show_edge=False)
    for name in columns:
        table.add_column(name, no_wrap=True, overflow="ellipsis")
    return table


def task_table(console: Console, view: dict, summary: str, notice: str = "") -> RenderableType:
    """One row per endpoint (state, progress, run, attempts, the last line of its output),
    then the summary line, and the notice when there is one. On a narrow terminal the last
    output and the progress message give way first."""
    rows = responses(view)
    bar = 20 if console.width >= 120 else 10
    table = _table(console, "endpoint", "state", "progress", "run", "attempts", "last output")
    widest = max((len(printable(response.get("endpoint"), 60)) for response in rows), default=8)
    if console.is_terminal:
        _fit(table, console.width, max(8, min(widest, 24)), bar)
    for response in rows:
        table.add_row(
            plain(response.get("endpoint"), 60),
            state_text(response.get("state")),
            _progress(response, bar if console.is_terminal else 0),
            plain(response.get("run") or ""),
            plain("" if response.get("attempts") is None else response["attempts"]),
            _last_output(response),
        )
    status = view.get("task", {}).get("status") or ""
    parts: list[RenderableType] = [table, Text(summary, style=STATUS_STYLE.get(status, ""))]
    if notice:
        parts.append(Text(printable(notice, 300), style="dim italic"))
    return Group(*parts)


def _fit(table: Table, width: int, endpoint: int, bar: int) -> None:
    """Widths for a terminal: fixed columns, and what is left shared by progress and output
    (at least the bar and its percent: the last output and the message give way first)."""
    fixed = (endpoint, 9, 3, 8)
    left = width - sum(fixed) - 3 * len(table.columns) + 3  # padding and dividers
    progress = max(bar + 7, min(bar + 37, left // 2))
    widths = (endpoint, 9, progress, 3, 8, max(1, left - progress))
    for column, size in zip(table.columns, widths, strict=True):
        column.width = column.min_width = column.max_width = size


def _progress(response: dict, bar: int) -> RenderableType:
    percent = response.get("progress")
    message = printable(response.get("progress_message") or "", 40)
    if response.get("state") == ResponseState.SUCCEEDED.value:  # whatever it reported last, it is all done
        percent, message = 100, "done"
    if percent is None:
        return Text("")
    if not bar:
        return Text(("%d%% %s" % (percent, message)).strip())
    grid = Table.grid(padding=(0, 1), expand=True)
    grid.add_column(width=bar, min_width=bar)
    grid.add_column(width=4, min_width=4, justify="right")
    grid.add_column(no_wrap=True, overflow="ellipsis", ratio=1)
    grid.add_row(ProgressBar(total=100, completed=percent, width=bar), Text("%d%%" % percent), Text(message))
    return grid


def _last_output(response: dict) -> Text:
    state = response.get("state")
    if state in FINAL and state != ResponseState.SUCCEEDED.value and response.get("errmsg"):
        return Text("errnr %s: %s" % (response.get("errnr"), printable(response["errmsg"])), style="red")
    return Text(last_line(response.get("output_tail")))


def tasks_table(console: Console, tasks: list[dict]) -> Table:
    """The task list: identifier, status, the endpoints' states, times."""
    table = _table(console, "identifier", "status", "endpoints", "states", "started (UTC)", "last change (UTC)")
    for task in tasks:
        status = task.get("status") or ""
        table.add_row(
            plain(task.get("identifier") or "", 60),
            Text(printable(status, 20), style=STATUS_STYLE.get(status, "")),
            plain(len(task.get("endpoints") or [])),
            plain(counts_text(task.get("counts") or {})),
            plain(task.get("start_time") or ""),
            plain(task.get("last_modified_time") or ""),
        )
    return table


def endpoints_table(console: Console, endpoints: list[dict]) -> Table:
    """The registered endpoints: type, endpoint, alive, last seen, host, running, queued."""
    table = _table(console, "type", "endpoint", "alive", "last seen (UTC)", "host", "running", "queued")
    for row in endpoints:
        alive = row.get("alive")
        shown = Text("yes", style="green") if alive else Text("no", style="bold red") if alive is False else Text("?")
        table.add_row(
            plain(row.get("type") or "", 60),
            plain(row.get("endpoint"), 60),
            shown,
            plain(row.get("last_seen") or ""),
            plain(row.get("host") or "", 60),
            plain(row.get("running") or "-", 60),
            plain("-" if row.get("queued") is None else row["queued"]),
        )
    return table


def show(console: Console, renderable: RenderableType) -> None:
    """Print to stdout: as it is on a terminal; piped, without the spaces that pad line ends."""
    if console.is_terminal:
        console.print(renderable)
        return
    with console.capture() as captured:
        console.print(renderable)
    for line in captured.get().splitlines():
        write_line(line.rstrip())


def write_line(text: str) -> None:
    """One line to stdout, at once (a reader of the pipe sees each change as it comes)."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def print_json(body: object) -> None:
    """The API's JSON, indented, to stdout."""
    write_line(json.dumps(body, indent=2))
