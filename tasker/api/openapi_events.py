"""The parts of the OpenAPI document about events: `GET /events`, the `wait` parameter of a
task's GET, and the schemas of the events' data (`TaskEvent`, `ResponseEvent`, `ResetEvent`).
"""

from __future__ import annotations

from typing import Any

from tasker.api.schemas import ERRORS, ref
from tasker.api.waiting import MAX_WAIT, MIN_WAIT
from tasker.status import ResponseState, TaskStatus

EVENTS_DESCRIPTION = """Server-Sent Events, as they happen, of every task (or of one type, or one identifier):
each is `id: <id>`, `event: task`, `response` or `reset`, `data: <JSON>` and a blank line (see the
schemas TaskEvent, ResponseEvent and ResetEvent). A `: ping` comment comes every 15 seconds.
Ids increase; send the last one you got as `Last-Event-ID` when you reconnect to get what you
missed first, or `event: reset` when it is older than `api.event_retention` (then read the
state of your tasks again; the stream goes on from the reset's id). The stream never ends by
itself: it ends when the API stops or the client falls too far behind (reconnect). A token
goes in the `Authorization` header only: a URL with `token` or `access_token` is a 400."""


def wait_parameter() -> dict[str, Any]:
    """`?wait=S` of `GET /<type>/<identifier>`."""
    return {
        "name": "wait",
        "in": "query",
        "required": False,
        "description": "Answer as soon as the task is settled, or after this many seconds with the task as it "
        "is then (503 when api.max_waiters requests wait already).",
        "schema": {"type": "integer", "minimum": MIN_WAIT, "maximum": MAX_WAIT},
    }


def events_operation(task_types: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """`GET /events`, without its security (the document adds it)."""
    parameters = [
        _query("type", "Only the events of tasks of this type.", {"type": "string", "enum": list(task_types)}),
        _query("identifier", "Only the events of tasks with this identifier.", ref("Name")),
        {
            "name": "Last-Event-ID",
            "in": "header",
            "required": False,
            "description": "The id of the last event received: the stream starts after it.",
            "schema": {"type": "string", "pattern": "^[0-9]{1,18}$"},
        },
    ]
    headers = {
        "Cache-Control": {"required": True, "schema": {"type": "string", "enum": ["no-cache"]}},
        "X-Accel-Buffering": {"required": True, "schema": {"type": "string", "enum": ["no"]}},
    }
    stream = {"text/event-stream": {"schema": {"type": "string"}}}
    return {
        "operationId": "events",
        "summary": "Stream the events of tasks and their responses as Server-Sent Events",
        "description": EVENTS_DESCRIPTION,
        "parameters": parameters,
        "responses": {
            "200": {
                "description": "The stream, until the client or the API ends it.",
                "headers": headers,
                "content": stream,
            },
            "400": _error(400),
            "503": {
                "description": "api.max_event_streams streams are open, or the database has not answered yet.",
                "content": {"application/json": {"schema": ref("Error")}},
            },
        },
    }


def event_schemas() -> dict[str, Any]:
    """The JSON of each kind of event (`data:`), by schema name."""
    counts = {state.value: {"type": "integer", "minimum": 0} for state in ResponseState}
    return {
        "TaskEvent": _object(
            type={"type": "string"},
            identifier=ref("Name"),
            status={"type": "string", "enum": [status.value for status in TaskStatus]},
            counts=_object(**counts),
            settled={"type": "boolean"},
        ),
        "ResponseEvent": _object(
            type={"type": "string"},
            identifier=ref("Name"),
            endpoint=ref("Name"),
            run={"type": "integer", "minimum": 1},
            state={"type": "string", "enum": [state.value for state in ResponseState]},
            errnr={"type": "integer"},
            progress={"type": ["number", "null"]},
            progress_message={"type": ["string", "null"]},
        ),
        "ResetEvent": _object(reason={"type": "string"}),
    }


def _query(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description, "schema": schema}


def _error(status: int) -> dict[str, str]:
    return {"$ref": "#/components/responses/%s" % ERRORS[status][0]}


def _object(**properties: Any) -> dict[str, Any]:
    return {"type": "object", "required": list(properties), "properties": properties}
