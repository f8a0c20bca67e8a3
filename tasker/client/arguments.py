"""The `tasker` command's arguments turned into the API's request bodies and queries.

Pure functions; a value the command cannot send is a `UsageError` that names the option. What
the API would refuse as the caller's mistake (a name's characters, a time, a status, a limit's
range) is refused here first, by the API's own rules, so that bad usage exits 2 even when the
API cannot be reached. Only what the API alone knows (a type or task that exists) is left to it.
"""

from __future__ import annotations

import json
import re
import shlex
import sys
import uuid
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Any, Iterable

from tasker.client.errors import UsageError
from tasker.names import NAME_PATTERN, NAME_RULE, TASK_TYPE_PATTERN
from tasker.status import ResponseState, TaskStatus

RETRY_SELECTIONS = ("failed", "missing", "all", "unfinished")
LIST_LIMIT = 500  # the most tasks the API lists in one page
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"  # as the API writes and reads times, in UTC
TYPE_RULE = "a lower-case letter, then up to 49 of a-z 0-9 _"
_WHOLE = re.compile(r"[0-9]+")
_PERCENT = re.compile(r"[0-9]+(\.[0-9]+)?%")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}")
_CURSOR = re.compile(r"[A-Za-z0-9_-]{1,64}")  # what the API gives out as a page's `next`
# The options of `list` in the order a command line shows them (the next page's hint).
LIST_OPTIONS = ("status", "endpoint", "state", "since", "until", "identifier", "limit")


def task_type_value(text: str, what: str = "TYPE") -> str:
    """A task type as configured types are named; any other cannot exist."""
    if not TASK_TYPE_PATTERN.match(text):
        raise UsageError("%s must be a task type name (%s), not %s" % (what, TYPE_RULE, _shown(text)))
    return text


def name_value(text: str, what: str) -> str:
    """An identifier, an endpoint's name, or the start of an identifier: the API's name rule."""
    if not NAME_PATTERN.match(text):
        raise UsageError("%s must be %s, not %s" % (what, NAME_RULE, _shown(text)))
    return text


def _shown(text: str) -> str:
    """A value in an error line: quoted, escaped, and short (a name may be 100 KB)."""
    return repr(text[:60]) + ("..." if len(text) > 60 else "")


def new_identifier() -> str:
    """An identifier for a task submitted without one."""
    return str(uuid.uuid4())


def payload_value(text: str) -> Any:
    """`--payload`: JSON text, or `@file` (`@-`: standard input) holding it."""
    source = "--payload"
    if text.startswith("@"):
        source = "--payload file %s" % text[1:]
        try:
            text = sys.stdin.read() if text == "@-" else Path(text[1:]).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError("cannot read %s: %s" % (source, getattr(exc, "strerror", None) or exc)) from None
    try:
        return json.loads(text, parse_constant=_no_constant)
    except ValueError as exc:
        hint = "a string is written with its quotes: '\"text\"'"
        raise UsageError("%s is not valid JSON (%s); %s" % (source, exc, hint)) from None


def _no_constant(name: str) -> Any:
    raise ValueError("%s is not JSON" % name)


def limit_value(text: str | None, option: str) -> int | str | None:
    """`--max-concurrency`, `--max-errors`: a whole number, or a percentage such as `25%`."""
    if text is None:
        return None
    text = text.strip()
    if _WHOLE.fullmatch(text):
        return int(text)
    if _PERCENT.fullmatch(text):
        return text
    raise UsageError("%s must be a whole number or a percentage such as 25%%, not %r" % (option, text))


def seconds_value(seconds: float | None) -> int | float | None:
    """`--timeout`: sent as an integer when it is one."""
    if seconds is None:
        return None
    return int(seconds) if float(seconds).is_integer() else seconds


def names(values: Iterable[str], option: str = "--endpoint") -> list[str]:
    """Endpoint names given as repeated options, comma-separated, or both."""
    listed = [name.strip() for value in values for name in value.split(",") if name.strip()]
    return [name_value(name, "%s name" % option) for name in listed]


def submit_body(
    identifier: str,
    payload: str | None,
    endpoints: Iterable[str],
    timeout: float | None,
    max_concurrency: str | None,
    max_errors: str | None,
) -> dict[str, Any]:
    """The body of `POST /<type>`: only the keys the command line gave."""
    body: dict[str, Any] = {"identifier": identifier}
    if payload is not None:
        body["payload"] = payload_value(payload)
    selected = names(endpoints)
    if selected:
        body["endpoints"] = selected
    limits = {
        "timeout": seconds_value(timeout),
        "max_concurrency": limit_value(max_concurrency, "--max-concurrency"),
        "max_errors": limit_value(max_errors, "--max-errors"),
    }
    body.update({key: value for key, value in limits.items() if value is not None})
    return body


def retry_body(endpoints: Iterable[str], after_run: int | None) -> dict[str, Any]:
    """The body of `POST .../retry`: a selection's name or endpoint names, and `after_run`;
    `{}` (the API's default, `failed`) when neither is given."""
    body: dict[str, Any] = {}
    selected = names(endpoints, "--endpoints")
    keywords = [name for name in selected if name in RETRY_SELECTIONS]
    if keywords and len(selected) > 1:
        raise UsageError(
            "--endpoints takes one of %s, or endpoint names, not both (%s)"
            % (", ".join(RETRY_SELECTIONS), ", ".join(selected))
        )
    if keywords:
        body["endpoints"] = keywords[0]
    elif selected:
        body["endpoints"] = selected
    if after_run is not None:
        body["after_run"] = after_run
    return body


def time_filter(text: str | None, option: str, end_of_day: bool) -> str | None:
    """`--since`, `--until`: a time as the API writes them (`T` may stand for the space); a date
    alone means its first (or, for `--until`, its last) second."""
    if text is None:
        return None
    given, text = text, text.strip().replace("T", " ", 1)
    if _DATE.fullmatch(text):
        text += " 23:59:59" if end_of_day else " 00:00:00"
    try:
        if not _TIME.fullmatch(text):
            raise ValueError(text)
        datetime.strptime(text, TIME_FORMAT)
    except ValueError:
        raise UsageError(
            "%s must be a UTC time as YYYY-MM-DD HH:MM:SS, or a date, not %s" % (option, _shown(given))
        ) from None
    return text


def choice_value(text: str | None, option: str, kind: type[Enum]) -> str | None:
    """`--status`, `--state`: one of the enum's values, as the API names them."""
    choices = [member.value for member in kind]
    if text is None or text in choices:
        return text
    raise UsageError("%s must be one of %s, not %s" % (option, ", ".join(choices), _shown(text)))


def list_query(filters: dict[str, Any]) -> dict[str, Any]:
    """The query of `GET /<type>`: the filters given, checked, times as the API takes them."""
    query = {key: value for key, value in filters.items() if value is not None}
    choice_value(query.get("status"), "--status", TaskStatus)
    choice_value(query.get("state"), "--state", ResponseState)
    for key, what in (("endpoint", "--endpoint"), ("identifier", "--identifier (the start of identifiers)")):
        if key in query:
            name_value(query[key], what)
    for key, end_of_day in (("since", False), ("until", True)):
        if key in query:
            query[key] = time_filter(query[key], "--" + key, end_of_day)
    if query.get("since") and query.get("until") and query["since"] > query["until"]:
        raise UsageError("--since (%s) is after --until (%s)" % (query["since"], query["until"]))
    if "cursor" in query and not _CURSOR.fullmatch(query["cursor"]):
        raise UsageError("--cursor must be a page's `next` as the API gave it, not %s" % _shown(query["cursor"]))
    return query


def next_page_command(task_type: str, filters: dict[str, Any], cursor: str) -> str:
    """The command line that lists the page after this one: the same filters, and its cursor."""
    words = ["tasker", "list", task_type]
    for key in LIST_OPTIONS:
        if filters.get(key) is not None:
            words += ["--" + key, str(filters[key])]
    return shlex.join(words + ["--cursor", cursor])
