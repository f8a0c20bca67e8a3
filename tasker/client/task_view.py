"""A task as the command shows it: its responses patched by events, and the text of each line.

Pure functions over the JSON of `GET /<type>/<identifier>` (a "view") and of `response`
events: no I/O, no clock of their own.
"""

from __future__ import annotations

import re
from collections import Counter
from datetime import datetime, timezone

from tasker.status import OPEN_STATES, ResponseState

STATES = tuple(state.value for state in ResponseState)  # in lifecycle order
OPEN = frozenset(state.value for state in OPEN_STATES)
FINAL = frozenset(STATES) - OPEN
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
# Control characters (C0 but tab, DEL, C1): text from handlers must not drive the terminal.
_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f]")


def responses(view: dict) -> list[dict]:
    """The task's responses, in the order the API lists them."""
    return list(view.get("taskResponseList") or [])


def apply_event(view: dict, event: dict) -> bool:
    """Patch the response an event is about; False when it is not newer than what `view` shows.

    A GET may have shown a later state than an event read after it, so an event only moves a
    response forwards: to a later run, or within a run to a state at least as far along.
    """
    for response in responses(view):
        if response.get("endpoint") != event.get("endpoint"):
            continue
        if not _moves_forward(response, event):
            return False
        new_run = (event.get("run") or 0) > (response.get("run") or 0)
        if new_run:
            response.update(output_tail=None, output_size=None, errmsg=None, attempts=0)
        for key in ("run", "state", "errnr", "progress", "progress_message"):
            # Within a run, a progress once shown stays until the next report (an event without
            # one, such as `running`, may be older than the GET that showed it).
            if key in event and (new_run or event[key] is not None or key not in ("progress", "progress_message")):
                response[key] = event[key]
        response["from_event"] = True  # until a GET brings the rest (errmsg, attempts, output)
        return True
    return False


def _moves_forward(response: dict, event: dict) -> bool:
    run, current = event.get("run") or 0, response.get("run") or 0
    if run != current:
        return run > current
    if response.get("state") in FINAL:
        return False
    return _rank(event.get("state")) >= _rank(response.get("state"))


def _rank(state: str | None) -> int:
    return STATES.index(state) if state in STATES else len(STATES)


def state_counts(view: dict) -> dict[str, int]:
    """How many endpoints are in each state, counted from the responses shown."""
    return dict(Counter(response.get("state") for response in responses(view)))


def counts_text(counts: dict[str, int]) -> str:
    """`succeeded 2, failed 1`: the states that have endpoints, in lifecycle order."""
    parts = ["%s %d" % (state, counts[state]) for state in STATES if counts.get(state)]
    parts += ["%s %d" % (state, n) for state, n in sorted(counts.items()) if state not in STATES and n]
    return ", ".join(parts) or "no endpoints"


def summary_text(view: dict, elapsed: float | None) -> str:
    """The summary line: `worker/deploy-1 DONE: succeeded 2 (4.0 s)`."""
    task = view.get("task", {})
    counts = counts_text(state_counts(view))
    text = "%s/%s %s: %s" % (task.get("type"), task.get("identifier"), task.get("status"), counts)
    return text if elapsed is None else "%s (%s)" % (text, duration_text(elapsed))


def duration_text(seconds: float) -> str:
    """`4.2 s`, `3 min 05 s`, `2 h 07 min`."""
    seconds = max(0.0, seconds)
    if seconds < 60:
        return "%.1f s" % seconds
    if seconds < 3600:
        return "%d min %02d s" % divmod(int(seconds), 60)
    return "%d h %02d min" % divmod(int(seconds) // 60, 60)


def seconds_since_start(view: dict, now: datetime | None = None) -> float | None:
    """How long the task has been going by the API's times: until its last change once it
    settled, until `now` (UTC) before; None without a start time."""
    task = view.get("task", {})
    start = parse_time(task.get("start_time"))
    if start is None:
        return None
    end = parse_time(task.get("last_modified_time")) if task.get("settled") else None
    end = end or now or datetime.now(timezone.utc).replace(tzinfo=None)
    return max(0.0, (end - start).total_seconds())


def parse_time(text: str | None) -> datetime | None:
    """A time as the API writes it (`YYYY-MM-DD HH:MM:SS`, UTC), or None."""
    try:
        return datetime.strptime(text or "", TIME_FORMAT)
    except ValueError:
        return None


def printable(text: object, limit: int = 200) -> str:
    """`text` on one line without control characters, cut to `limit` characters."""
    line = _CONTROL.sub(" ", str(text)).replace("\t", " ").strip()
    return line if len(line) <= limit else line[: limit - 3] + "..."


def last_line(tail: str | None, limit: int = 200) -> str:
    """The last line of an output tail that has text (a carriage return ends a line too: what
    a progress counter wrote last is what shows)."""
    for line in reversed((tail or "").splitlines()):
        shown = printable(line, limit)
        if shown:
            return shown
    return ""


def change_text(response: dict) -> str:
    """One response as a line: `web1 running 40% copying files`, `web2 failed errnr 1: disk full`."""
    parts = [printable(response.get("endpoint"), 60)]
    if (response.get("run") or 1) > 1:
        parts.append("run %d" % response["run"])
    state = response.get("state") or "?"
    parts.append(state)
    if (response.get("attempts") or 0) > 1 and state not in FINAL:
        parts.append("attempt %d" % response["attempts"])
    if state not in FINAL and response.get("progress") is not None:
        parts.append("%d%%" % response["progress"])
        if response.get("progress_message"):
            parts.append(printable(response["progress_message"]))
    if state in FINAL and state != "succeeded":
        reason = printable(response.get("errmsg") or "")
        parts.append("errnr %s%s" % (response.get("errnr"), ": " + reason if reason else ""))
    return " ".join(parts)
