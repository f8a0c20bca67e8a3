"""The task message: JSON, never pickle. Decoding checks the shape before anything uses it."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from typing import Any

from tasker import jsontext
from tasker.clock import format_time
from tasker.config import NAME_PATTERN, TASK_TYPE_PATTERN
from tasker.errors import InvalidTask
from tasker.records import TaskRecord

MAX_MESSAGE_BYTES = 16 * 1024 * 1024


@dataclasses.dataclass(frozen=True)
class TaskMessage:
    """What the API publishes for each task, and all a manager needs to run it."""

    id: int
    identifier: str
    type: str
    endpoints: tuple[str, ...]
    payload: Any
    # The run this message performs, and its delivery deadline (`YYYY-MM-DD HH:MM:SS`, UTC).
    run: int = 1
    deadline: str | None = None


def encode_task(task: TaskRecord, run: int = 1, deadline: dt.datetime | None = None) -> bytes:
    """The message body of run `run` of a stored task (run 1's deadline is the task's)."""
    body = {
        "id": task.id,
        "identifier": task.identifier,
        "type": task.type,
        "endpoints": list(task.endpoints),
        "payload": task.payload,
        "run": run,
        "deadline": format_time(deadline or task.deadline),
    }
    return jsontext.dumps(body, separators=(",", ":")).encode("utf-8")


def decode_task(body: bytes) -> TaskMessage:
    """Parse and check a message body; InvalidTask says what is wrong with it."""
    if len(body) > MAX_MESSAGE_BYTES:
        raise InvalidTask("message of %d bytes is over the limit of %d" % (len(body), MAX_MESSAGE_BYTES))
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidTask("message is not JSON: %s" % exc) from exc
    if not isinstance(data, dict):
        raise InvalidTask("message is not a JSON object")
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
    return TaskMessage(task_id, identifier, task_type, tuple(endpoints), data.get("payload", ""), run, deadline)
