"""The `tasker` command's arguments turned into the API's request bodies and queries.

Pure functions; a value the command cannot send is a `UsageError` that names the option. What
only the API can judge (a name's characters, a limit's range, a type that exists) is left to
it: its `400` says why, and the command exits 2 all the same.
"""

from __future__ import annotations

import json
import re
import sys
import uuid
from pathlib import Path
from typing import Any, Iterable

from tasker.client.errors import UsageError

RETRY_SELECTIONS = ("failed", "missing", "all", "unfinished")
_WHOLE = re.compile(r"[0-9]+")
_PERCENT = re.compile(r"[0-9]+(\.[0-9]+)?%")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


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


def names(values: Iterable[str]) -> list[str]:
    """Endpoint names given as repeated options, comma-separated, or both."""
    return [name.strip() for value in values for name in value.split(",") if name.strip()]


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
    selected = names(endpoints)
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


def time_filter(text: str | None, end_of_day: bool) -> str | None:
    """`--since`, `--until`: a time as the API writes them; a date alone means its first (or,
    for `--until`, its last) second."""
    if text is None:
        return None
    text = text.strip().replace("T", " ")
    if _DATE.fullmatch(text):
        return text + (" 23:59:59" if end_of_day else " 00:00:00")
    return text


def list_query(filters: dict[str, Any]) -> dict[str, Any]:
    """The query of `GET /<type>`: the filters given, times as the API takes them."""
    query = {key: value for key, value in filters.items() if value is not None}
    if "since" in query:
        query["since"] = time_filter(query["since"], False)
    if "until" in query:
        query["until"] = time_filter(query["until"], True)
    return query
