"""The task message: JSON, never pickle. Decoding checks the shape before anything uses it.

The payload comes last and is not parsed here: a manager only needs the envelope (task id,
type, endpoints, run, deadline) and hands the payload on as text to the handler's process,
which parses it. A payload of a megabyte would otherwise be a few million objects in the
manager, held for as long as the run waits. A message whose payload is not last (an API of
an earlier version) is parsed whole.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from typing import Any

from tasker import jsontext
from tasker.clock import format_time
from tasker.config import NAME_PATTERN, TASK_TYPE_PATTERN
from tasker.errors import InvalidTask
from tasker.jsontext import JsonText
from tasker.lifecycle import PERCENT, Limits
from tasker.records import LIMIT_KEYS, TaskRecord

MAX_MESSAGE_BYTES = 16 * 1024 * 1024
_PAYLOAD_KEY = ',"payload":'
_NO_LINE_BREAKS = str.maketrans("\r\n", "  ")


@dataclasses.dataclass(frozen=True)
class TaskMessage:
    """What the API publishes for each task, and all a manager needs to run it."""

    id: int
    identifier: str
    type: str
    endpoints: tuple[str, ...]
    payload: JsonText
    # The run this message performs, and its delivery deadline (`YYYY-MM-DD HH:MM:SS`, UTC).
    run: int = 1
    deadline: str | None = None
    # The task's limits (None: none): its own time limit, and max_concurrency and max_errors.
    timeout: float | None = None
    limits: Limits = Limits()

    @classmethod
    def of(cls, task: TaskRecord, run: int) -> TaskMessage:
        """The message of run `run` of a stored task, as a manager would have received it."""
        return cls(
            task.id, task.identifier, task.type, task.endpoints, task.payload, run, None, task.timeout, task.limits
        )


def encode_task(task: TaskRecord, run: int = 1, deadline: dt.datetime | None = None) -> bytes:
    """The message body of run `run` of a stored task (run 1's deadline is the task's)."""
    body = {
        "id": task.id,
        "identifier": task.identifier,
        "type": task.type,
        "endpoints": list(task.endpoints),
        "run": run,
        "deadline": format_time(deadline or task.deadline),
    }
    for key in LIMIT_KEYS:
        if getattr(task, key) is not None:
            body[key] = getattr(task, key)
    body["payload"] = task.payload
    return jsontext.dumps(body, separators=(",", ":")).encode("utf-8")


def decode_task(body: bytes) -> TaskMessage:
    """Parse and check a message body; InvalidTask says what is wrong with it."""
    if len(body) > MAX_MESSAGE_BYTES:
        raise InvalidTask("message of %d bytes is over the limit of %d" % (len(body), MAX_MESSAGE_BYTES))
    try:
        data, payload = _envelope(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidTask("message is not JSON: %s" % exc) from exc
    task_id, identifier, task_type = data.get("id"), data.get("identifier"), data.get("type")
    endpoints = data.get("endpoints")
    if not isinstance(task_id, int) or isinstance(task_id, bool) or task_id < 1:
        raise InvalidTask("message has no valid task id")
    if not isinstance(identifier, str) or not NAME_PATTERN.match(identifier):
        raise InvalidTask("message has no valid identifier")
    if not isinstance(task_type, str) or not TASK_TYPE_PATTERN.match(task_type):
        raise InvalidTask("message has no valid task type")
    if not isinstance(endpoints, list) or not all(isinstance(e, str) and NAME_PATTERN.match(e) for e in endpoints):
        raise InvalidTask("message has no valid endpoint list")
    run, deadline = data.get("run", 1), data.get("deadline")
    if not isinstance(run, int) or isinstance(run, bool) or run < 1:
        raise InvalidTask("message has no valid run number")
    if deadline is not None and not isinstance(deadline, str):
        raise InvalidTask("message has no valid deadline")
    timeout = data.get("timeout")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0):
        raise InvalidTask("message has no valid timeout")
    limits = Limits(_limit(data, "max_concurrency"), _limit(data, "max_errors"))
    return TaskMessage(task_id, identifier, task_type, tuple(endpoints), payload, run, deadline, timeout, limits)


def _limit(data: dict[str, Any], key: str) -> int | str | None:
    value = data.get(key)
    if value is None or (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
        return value
    if isinstance(value, str) and PERCENT.match(value):
        return value
    raise InvalidTask("message has no valid %s" % key)


def _envelope(text: str) -> tuple[dict[str, Any], JsonText]:
    """The message's keys but the payload, and the payload as text.

    The keys before the payload hold names, numbers, a time and limits ("25%"), none of which
    can contain a double quote: the first `,"payload":` is the payload's key.
    """
    head, found, rest = text.partition(_PAYLOAD_KEY)
    if found and rest.endswith("}"):
        data = json.loads(head + "}")
        if isinstance(data, dict) and "run" in data and "payload" not in data:
            # Raw line breaks can only stand between a JSON text's tokens: spaces do as well,
            # and the handler's process reads its jobs one line each.
            return data, JsonText(rest[:-1].translate(_NO_LINE_BREAKS))
    data = json.loads(text)
    if not isinstance(data, dict):
        raise InvalidTask("message is not a JSON object")
    return data, JsonText.of(data.get("payload", ""))
