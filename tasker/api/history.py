"""`GET /<type>`: the history's query string, its cursor, and its answer.

The answer is `{"tasks": [...], "next": <cursor> | null}`: each task as `GET /<type>/<identifier>`
shows it (with `counts` and `settled`) but without its payload. `next` is opaque to clients; it
encodes the (start_time, id) of the last task the page looked at. A page may hold fewer tasks
than `limit` while `next` is not null (a filter that few of the newest tasks meet): the tasks
end only where `next` is null.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import re
from typing import Any, Callable

from tasker import jsontext
from tasker.api.validation import NAME_RULE
from tasker.clock import TIME_FORMAT
from tasker.config import NAME_PATTERN
from tasker.errors import InvalidTask
from tasker.lifecycle import count_states, is_settled
from tasker.status import ResponseState, TaskStatus
from tasker.storage.history import HistoryPage, HistoryQuery, HistoryStore, Listed, Position

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
PARAMETERS = ("status", "endpoint", "state", "since", "until", "identifier", "limit", "cursor")
# A cursor's text as the OpenAPI document describes it (JSON Schema's `$`: the end of the text).
CURSOR_TEXT = r"^[A-Za-z0-9_-]{1,64}$"
_CURSOR = re.compile(CURSOR_TEXT[:-1] + r"\Z")
_TIME = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}\Z")  # the document's Time
_LIMIT = re.compile(r"^[0-9]{1,3}\Z")
_POSITION = re.compile(r"^([0-9]{20})\.([0-9]{1,19})\Z")
_MAX_ID = 2**63 - 1  # the largest id a database holds
_POSITION_TIME = "%Y%m%d%H%M%S%f"

# Reads a query parameter's text as sent (None: not given).
Argument = Callable[[str], "str | None"]


def history_query(task_type: str, arguments: dict[str, Any], argument: Argument) -> HistoryQuery:
    """The history query of a request's parameters; InvalidTask (a 400) says what is wrong."""
    unknown = sorted(set(arguments) - set(PARAMETERS))
    if unknown:
        raise InvalidTask("unknown query parameter %r (known: %s)" % (unknown[0][:40], ", ".join(PARAMETERS)))
    since, until = _time(argument, "since"), _time(argument, "until")
    if since is not None and until is not None and since > until:
        raise InvalidTask("since (%s) is after until (%s)" % (argument("since"), argument("until")))
    return HistoryQuery(
        type=task_type,
        status=_choice(argument, "status", TaskStatus),
        endpoint=_name(argument, "endpoint", "an endpoint name"),
        state=_choice(argument, "state", ResponseState),
        since=since,
        until=until,
        identifier=_name(argument, "identifier", "the start of an identifier"),
        limit=_limit(argument("limit")),
        after=_cursor(argument("cursor")),
    )


def history_answer(store: HistoryStore, query: HistoryQuery) -> str:
    """Read a page and render it as the answer's JSON text (blocking: run it in the executor)."""
    return jsontext.dumps(history_view(store.page(query)))


def history_view(page: HistoryPage) -> dict[str, Any]:
    """The page as the API answers it."""
    cursor = encode_cursor(page.next) if page.next is not None else None
    return {"tasks": [listed_view(listed) for listed in page.tasks], "next": cursor}


def listed_view(listed: Listed) -> dict[str, Any]:
    """A task as `GET /<type>/<identifier>` shows it (counts, settled), without its payload."""
    shown = listed.task.view()
    del shown["payload"]
    shown.update(counts=count_states(listed.states), settled=is_settled(listed.states))
    return shown


def encode_cursor(position: Position) -> str:
    """The opaque text of a position in the history's order."""
    start_time, task_id = position
    text = "%s.%d" % (start_time.strftime(_POSITION_TIME), task_id)
    return base64.urlsafe_b64encode(text.encode("ascii")).decode("ascii").rstrip("=")


def _cursor(text: str | None) -> Position | None:
    if text is None:
        return None
    refused = InvalidTask("cursor %r is not one this API gave out: pass a page's `next` as it is" % text[:70])
    if not _CURSOR.match(text):
        raise refused
    try:
        decoded = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode("ascii")
        found = _POSITION.match(decoded)
        if found is None or int(found.group(2)) > _MAX_ID:
            raise ValueError(decoded)
        return dt.datetime.strptime(found.group(1), _POSITION_TIME), int(found.group(2))
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise refused from None


def _choice(argument: Argument, key: str, kind: type[TaskStatus] | type[ResponseState]) -> Any:
    text = argument(key)
    if text is None:
        return None
    try:
        return kind(text)
    except ValueError:
        choices = ", ".join(member.value for member in kind)
        raise InvalidTask("%s must be one of %s, not %r" % (key, choices, text[:40])) from None


def _name(argument: Argument, key: str, what: str) -> str | None:
    text = argument(key)
    if text is not None and not NAME_PATTERN.match(text):
        raise InvalidTask("%s must be %s (%s), not %r" % (key, what, NAME_RULE, text[:60]))
    return text


def _time(argument: Argument, key: str) -> dt.datetime | None:
    text = argument(key)
    if text is None:
        return None
    try:
        if not _TIME.match(text):
            raise ValueError(text)
        return dt.datetime.strptime(text, TIME_FORMAT)
    except ValueError:
        raise InvalidTask("%s must be a UTC time as YYYY-MM-DD HH:MM:SS, not %r" % (key, text[:40])) from None


def _limit(text: str | None) -> int:
    if text is None:
        return DEFAULT_LIMIT
    if not _LIMIT.match(text) or not 1 <= int(text) <= MAX_LIMIT:
        raise InvalidTask("limit must be a whole number from 1 to %d, not %r" % (MAX_LIMIT, text[:20]))
    return int(text)


def openapi_parameters(name_schema: dict[str, Any], time_schema: dict[str, Any]) -> list[dict[str, Any]]:
    """The query parameters of `GET /<type>` as the OpenAPI document describes them: what
    `history_query` takes, no more (given the document's schemas of a name and of a time)."""
    described = [
        ("status", "Only tasks in this status.", _enum(TaskStatus)),
        ("endpoint", "Only tasks that name this endpoint.", name_schema),
        ("state", "Only tasks with a response in this state (with `endpoint`: its response).", _enum(ResponseState)),
        ("since", "Only tasks created at or after this time (UTC).", time_schema),
        ("until", "Only tasks created at or before this time (UTC).", time_schema),
        ("identifier", "Only tasks whose identifier starts with this text (taken literally).", name_schema),
        ("limit", "At most this many tasks.", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": 50}),
        ("cursor", "The `next` of a page: the page after it.", {"type": "string", "pattern": CURSOR_TEXT}),
    ]
    return [
        {"name": name, "in": "query", "required": False, "description": description, "schema": schema}
        for name, description, schema in described
    ]


def _enum(kind: type[TaskStatus] | type[ResponseState]) -> dict[str, Any]:
    return {"type": "string", "enum": [member.value for member in kind]}
