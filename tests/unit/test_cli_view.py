"""How the `tasker` command shows a task: events patching its responses, lines, summaries."""

from __future__ import annotations

import io
import re
from datetime import datetime

import pytest
from rich.console import Console

from tasker.client.live import LiveTable, new_lines
from tasker.client.render import endpoints_table, show, task_table, tasks_table
from tasker.client.task_view import (
    apply_event,
    change_text,
    duration_text,
    last_line,
    printable,
    seconds_since_start,
    summary_text,
)


def response(endpoint: str, state: str = "queued", **keys) -> dict:
    base = {"endpoint": endpoint, "state": state, "run": 1, "attempts": 0, "progress": None}
    base.update(progress_message=None, errnr=0, errmsg=None, output_tail=None)
    base.update(keys)
    return base


def view(*responses: dict, status: str = "SENT", settled: bool = False) -> dict:
    task = {"type": "deploy", "identifier": "rel-42", "status": status, "settled": settled}
    task.update(start_time="2026-11-29 12:00:00", last_modified_time="2026-11-29 12:00:04")
    return {"task": task, "taskResponseList": list(responses)}


def event(endpoint: str, state: str, run: int = 1, **keys) -> dict:
    return dict({"endpoint": endpoint, "state": state, "run": run, "errnr": 0, "progress": None}, **keys)


def test_an_event_moves_its_endpoint_forwards_only():
    shown = view(response("web1", "received", attempts=1), response("web2"))
    assert apply_event(shown, event("web1", "running", progress=40, progress_message="copying"))
    web1 = shown["taskResponseList"][0]
    assert (web1["state"], web1["progress"], web1["progress_message"]) == ("running", 40, "copying")
    # Read after a GET that showed more: an older event changes nothing.
    assert not apply_event(shown, event("web1", "received"))
    web1["state"] = "succeeded"
    assert not apply_event(shown, event("web1", "running", progress=90))
    assert not apply_event(shown, event("web9", "running"))
    assert shown["taskResponseList"][1]["state"] == "queued"


def test_a_running_event_without_progress_keeps_the_progress_shown():
    shown = view(response("web1", "running", progress=40, progress_message="copying"))
    assert apply_event(shown, event("web1", "running"))
    assert shown["taskResponseList"][0]["progress"] == 40


def test_an_event_of_a_new_run_starts_the_endpoint_afresh():
    shown = view(response("web1", "failed", errnr=5, errmsg="boom", output_tail="boom\n", progress=75, attempts=1))
    assert apply_event(shown, event("web1", "queued", run=2))
    web1 = shown["taskResponseList"][0]
    assert (web1["run"], web1["state"], web1["errmsg"], web1["output_tail"], web1["progress"]) == (
        2,
        "queued",
        None,
        None,
        None,
    )


def test_a_line_says_what_changed_on_one_endpoint():
    assert change_text(response("web1", "running", progress=40, progress_message="copying files")) == (
        "web1 running 40% copying files"
    )
    assert change_text(response("web1", "received", run=2, attempts=2)) == "web1 run 2 received attempt 2"
    assert change_text(response("web2", "failed", errnr=1, errmsg="disk full\non web2")) == (
        "web2 failed errnr 1: disk full on web2"
    )
    assert change_text(response("web1", "succeeded", progress=100)) == "web1 succeeded"


def test_piped_lines_come_once_per_change_and_an_ending_waits_for_its_errmsg():
    shown: dict[str, str] = {}
    first = view(response("web1", "running", progress=10), response("web2"))
    assert new_lines(first, shown) == ["web1 running 10%", "web2 queued"]
    assert new_lines(first, shown) == []
    apply_event(first, event("web2", "failed", errnr=5))
    assert new_lines(first, shown) == [], "the GET that follows brings the errmsg: one line"
    second = view(response("web1", "running", progress=10, attempts=1), response("web2", "failed", errnr=5, errmsg="x"))
    assert new_lines(second, shown) == ["web2 failed errnr 5: x"]


def test_the_summary_counts_the_states_shown_and_the_time_taken():
    done = view(response("web1", "succeeded"), response("web2", "succeeded"), status="DONE", settled=True)
    assert summary_text(done, seconds_since_start(done)) == "deploy/rel-42 DONE: succeeded 2 (4.0 s)"
    going = view(response("web1", "running"), response("web2", "failed"))
    now = datetime(2026, 11, 29, 12, 3, 5)
    assert (
        summary_text(going, seconds_since_start(going, now)) == "deploy/rel-42 SENT: running 1, failed 1 (3 min 05 s)"
    )
    assert duration_text(7300) == "2 h 01 min"


def test_text_from_handlers_cannot_drive_the_terminal():
    assert printable("red \x1b[31m alert\x07\r\n") == "red  [31m alert"
    assert last_line("one\ntwo\n 10%\r 55%\r\n\n") == "55%"
    assert last_line(None) == "" and last_line("\n\n") == ""
    assert len(printable("x" * 500)) == 200


def test_the_table_shows_each_endpoint_and_the_summary():
    console = Console(width=140, record=True, color_system=None, force_terminal=True)
    shown = view(
        response("web1", "running", run=1, attempts=1, progress=40, progress_message="copying", output_tail="a\nb\n"),
        response("web2", "failed", errnr=5, errmsg="boom", progress=60, progress_message="stopped here"),
        response("web3", "succeeded", progress=83, progress_message="step 6 of 6", output_tail="all done\n"),
    )
    console.print(task_table(console, shown, "the summary", "polling"))
    text = console.export_text()
    assert " 60% stopped here" in text, "where a failed run stopped"
    assert re.search(r"^web3 +succeeded +\S+ +100% done +1 +0 +all done", text, re.M), text
    web1 = next(line for line in text.splitlines() if line.startswith("web1"))
    assert "running" in web1 and " 40% copying" in web1 and web1.rstrip().endswith("b")
    assert "errnr 5: boom" in text and "the summary" in text and "polling" in text


def test_the_live_elapsed_time_runs_on_from_the_first_view_and_stops_when_the_task_settles():
    now = [100.0]
    table = LiveTable(Console(width=140, force_terminal=True, color_system=None), clock=lambda: now[0])
    first = view(response("web1", "running"))
    first["task"]["start_time"] = None  # no start time: it counts from the first view
    table.take(first)
    now[0] += 3.2
    assert "(3.2 s)" in _text(table)
    table.take(view(response("web1", "succeeded"), status="DONE", settled=True))
    now[0] += 60
    assert "DONE: succeeded 1 (3.2 s)" in _text(table)


def _text(table: LiveTable) -> str:
    with table.console.capture() as captured:
        table.console.print(table.render())
    return captured.get()


MARKUP = ["[link=https://e.vil]ok[/link]", "[/]", "[bold red]red[/bold red] :thumbs_up:", "web[/x]"]


@pytest.mark.parametrize("terminal", [True, False], ids=["terminal", "piped"])
def test_text_from_the_api_is_shown_as_written_never_read_as_markup(terminal, monkeypatch):
    """Progress messages, output, errmsg, host and endpoint names, identifiers: all as they are."""
    rows = [
        response("web%d" % n, "running", progress=40, progress_message=text, output_tail=text + "\n")
        for n, text in enumerate(MARKUP)
    ]
    rows.append(response("web[/]", "failed", errnr=1, errmsg="[/] [link=https://e.vil]x[/link]"))
    hosts = [{"type": "deploy", "endpoint": text, "alive": True, "host": text, "running": text} for text in MARKUP]
    tasks = [{"identifier": text, "status": "DONE", "endpoints": [], "counts": {}} for text in MARKUP]
    console = Console(
        file=io.StringIO(), width=300, force_terminal=terminal, color_system="truecolor" if terminal else None
    )
    for table in (task_table(console, view(*rows), "the summary"), endpoints_table(console, hosts)):
        console.print(table)
    console.print(tasks_table(console, tasks))
    out = console.file.getvalue()
    assert "\x1b]8;" not in out, "no terminal hyperlink"
    plain = re.sub(r"\x1b\[[0-9;]*m", "", out)
    for text in MARKUP + ["[/] [link=https://e.vil]x[/link]"]:
        assert text in plain, text
    assert "👍" not in plain
    if not terminal:  # what a pipe reads, line by line
        lines: list[str] = []
        monkeypatch.setattr("tasker.client.render.write_line", lines.append)
        show(console, endpoints_table(console, hosts))
        assert any("[link=https://e.vil]ok[/link]" in line for line in lines), lines
