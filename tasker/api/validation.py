"""Turn a POST body into a NewTask, or say exactly what is wrong with it."""

from __future__ import annotations

import json
import math
import re
from typing import Any

from tasker.errors import InvalidTask
from tasker.jsontext import JsonText
from tasker.lifecycle import MAX_LIMIT, PERCENT, RETRY_SELECTIONS
from tasker.names import NAME_PATTERN, NAME_RULE
from tasker.records import NewTask

KNOWN_KEYS = {"identifier", "payload", "endpoints", "timeout", "max_concurrency", "max_errors"}
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_AS_LISTS = bytes.maketrans(b"{}", b"[]")
_NOT_BRACKETS = bytes(set(range(256)) - set(b"[]{}"))


def parse_new_task(
    task_type: str, body: bytes, max_endpoints: int = 1000, max_depth: int = 64, max_timeout: float = 86400.0
) -> NewTask:
    """Decode and check the JSON body of `POST /<task_type>`."""
    data = _json_object(body, max_depth)
    if _nested_deeper(body, max_depth + 1):
        raise InvalidTask("payload is nested deeper than %d levels" % max_depth)
    unknown = sorted(set(data) - KNOWN_KEYS)
    if unknown:
        raise InvalidTask("unknown key %r (known: %s)" % (unknown[0], ", ".join(sorted(KNOWN_KEYS))))
    return NewTask(
        type=task_type,
        identifier=check_identifier(data.get("identifier")),
        payload=JsonText.of(data.get("payload", "")),
        endpoints=_endpoints(data["endpoints"], max_endpoints) if "endpoints" in data else None,
        timeout=_timeout(data["timeout"], max_timeout) if "timeout" in data else None,
        max_concurrency=_limit("max_concurrency", data["max_concurrency"], 1) if "max_concurrency" in data else None,
        max_errors=_limit("max_errors", data["max_errors"], 0) if "max_errors" in data else None,
    )


def _timeout(value: Any, max_timeout: float) -> float:
    """`timeout`: seconds above 0 and at most `api.max_timeout` (null is refused: leave it out)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidTask("timeout must be a number of seconds, not %s" % _json_kind(value))
    if not 0 < value <= max_timeout:
        raise InvalidTask("timeout must be above 0 and at most %g seconds (api.max_timeout)" % max_timeout)
    return float(value)


def _limit(key: str, value: Any, least: int) -> int | str:
    """`max_concurrency` or `max_errors`: an integer `least` or more, or "N%" (0 to 100)."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and least <= value <= MAX_LIMIT:
        return value
    if isinstance(value, str) and PERCENT.match(value) and int(value[:-1]) >= least:
        return value
    raise InvalidTask('%s must be an integer from %d to %d, or a percentage such as "25%%"' % (key, least, MAX_LIMIT))


def _refuse_constant(name: str) -> Any:
    raise ValueError("%s is not a JSON value" % name)


def _finite_float(text: str) -> float:
    """A JSON number as a float; one too large for a double would become Infinity, which is
    not JSON and could never be answered back."""
    value = float(text)
    if math.isinf(value):
        raise ValueError("the number %s is out of range" % text[:40])
    return value


def _nested_deeper(body: bytes, limit: int) -> bool:
    """Whether lists and objects nest deeper than `limit` in a valid JSON text.

    Read on the text, not the parsed value: with strings taken out and only brackets kept,
    each pass that deletes every innermost `[]` takes exactly one level away.
    """
    brackets = _STRING.sub(b"", body).translate(_AS_LISTS, delete=_NOT_BRACKETS)
    for _ in range(limit):
        if not brackets:
            return False
        brackets = brackets.replace(b"[]", b"")
    return bool(brackets)


def check_identifier(identifier: Any) -> str:
    """Return the identifier if it follows the rule, else raise InvalidTask."""
    if identifier is None:
        raise InvalidTask("identifier is missing")
    if not isinstance(identifier, str):
        raise InvalidTask("identifier must be a string, not %s" % _json_kind(identifier))
    if not NAME_PATTERN.match(identifier):
        raise InvalidTask("identifier %r is not %s" % (identifier[:60], NAME_RULE))
    return identifier


def _endpoints(endpoints: Any, max_endpoints: int) -> list[str]:
    if not isinstance(endpoints, list):
        raise InvalidTask("endpoints must be a list of names, not %s" % _json_kind(endpoints))
    if not endpoints:
        raise InvalidTask("endpoints must name at least one endpoint (or be left out)")
    if len(endpoints) > max_endpoints:
        raise InvalidTask("endpoints names %d endpoints, more than %d" % (len(endpoints), max_endpoints))
    for name in endpoints:
        if not isinstance(name, str):
            raise InvalidTask("endpoints must hold strings, not %s" % _json_kind(name))
        if not NAME_PATTERN.match(name):
            raise InvalidTask("endpoint name %r is not %s" % (name[:60], NAME_RULE))
    seen: set[str] = set()
    for name in endpoints:
        if name in seen:
            raise InvalidTask("endpoint %r is named more than once" % name)
        seen.add(name)
    return endpoints


def _json_kind(value: Any) -> str:
    kinds = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}
    for kind, name in kinds.items():
        if isinstance(value, kind):
            return name
    return "a number"


RETRY_KEYS = {"endpoints", "after_run"}


def parse_retry(body: bytes, max_endpoints: int = 1000) -> tuple[str | list[str], int | None]:
    """Decode and check the optional body of `POST /<type>/<identifier>/retry`: the endpoints
    to retry (a selection's name or a list of names) and `after_run`."""
    if not body.strip():
        return "failed", None
    data = _json_object(body, 2)
    unknown = sorted(set(data) - RETRY_KEYS)
    if unknown:
        raise InvalidTask("unknown key %r (known: after_run, endpoints)" % unknown[0])
    selection = data.get("endpoints", "failed")
    if isinstance(selection, str):
        if selection not in RETRY_SELECTIONS:
            raise InvalidTask("endpoints must be one of %s, or a list of names" % ", ".join(RETRY_SELECTIONS))
    else:
        selection = _endpoints(selection, max_endpoints)
    return selection, _run_number(data.get("after_run"))


def _run_number(value: Any) -> int | None:
    """`after_run`: None, or an integer 0 or more (JSON's 3.0 counts as the integer 3)."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
        raise InvalidTask("after_run must be a run number (an integer, 0 or more)")
    return value


def _json_object(body: bytes, max_depth: int) -> dict[str, Any]:
    """The body as a JSON object; InvalidTask says why it is not one."""
    try:
        data = json.loads(body.decode("utf-8"), parse_constant=_refuse_constant, parse_float=_finite_float)
    except UnicodeDecodeError as exc:
        raise InvalidTask("body is not UTF-8: %s" % exc) from exc
    except RecursionError:
        raise InvalidTask("body is nested deeper than %d levels" % max_depth) from None
    except ValueError as exc:
        raise InvalidTask("body is not valid JSON: %s" % exc) from exc
    if not isinstance(data, dict):
        raise InvalidTask("body must be a JSON object, not %s" % _json_kind(data))
    return data
