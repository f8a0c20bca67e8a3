"""The JSON schemas of the API's request and answer bodies: `#/components/schemas` of the
OpenAPI document that tasker.api.openapi builds.
"""

from __future__ import annotations

from typing import Any

from tasker.lifecycle import MAX_LIMIT, PERCENT, RETRY_SELECTIONS
from tasker.names import NAME_SCHEMA_PATTERN
from tasker.status import ResponseState, ResponseStatus, TaskStatus

TIME_PATTERN = r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$"

# The error answers the API gives: the name of each in `#/components/responses`, and when (README "Errors").
ERRORS = {
    400: ("BadRequest", "Malformed: not JSON, not an object, an unknown key, a wrong type or value, a path not UTF-8."),
    401: ("Unauthorized", "No valid bearer token (only when `api.tokens` is configured)."),
    403: (
        "Forbidden",
        "Retry and cancel: the request comes from another web page (its `Origin` is not the API's own, or "
        "`Sec-Fetch-Site: cross-site`).",
    ),
    404: ("NotFound", "No such path or task type, no task with this identifier, or (output) no such endpoint or run."),
    405: ("MethodNotAllowed", "The path does not serve this method; `Allow` lists those it does."),
    409: ("Conflict", "The identifier exists for this type with another payload or other endpoints."),
    413: ("PayloadTooLarge", "The body is over `api.max_body_size`; answered from the headers, before it is read."),
    415: ("UnsupportedMediaType", "The Content-Type is not application/json (retry and cancel: even without a body)."),
    503: (
        "ServiceUnavailable",
        "The database cannot be reached: nothing was stored. Or, for `?wait` and /events, this API process has "
        "as many of them open as api.max_waiters or api.max_event_streams allow: try again later.",
    ),
}

# What a response and each earlier run say of their run's output (null until its end is recorded).
_OUTPUT_KEYS = {
    "output_size": {"type": ["integer", "null"], "minimum": 0, "description": "Bytes of UTF-8 the run wrote."},
    "output_tail": {"type": ["string", "null"], "description": "The last 2,000 characters of its output."},
}


def component_schemas(max_endpoints: int, max_timeout: float = 86400.0) -> dict[str, Any]:
    """The JSON schemas of request and answer bodies, by name (`#/components/schemas/<name>`)."""
    name = {"type": "string", "pattern": NAME_SCHEMA_PATTERN}
    time = {"type": "string", "pattern": TIME_PATTERN}
    return {
        "Name": name,
        "Time": time,
        "NewTask": {
            "type": "object",
            "required": ["identifier"],
            "additionalProperties": False,
            "properties": {
                "identifier": ref("Name"),
                "payload": {"description": "Any JSON value for the task handler.", "default": ""},
                "endpoints": {
                    "type": "array",
                    "description": "Left out: every endpoint registered for the type.",
                    "items": ref("Name"),
                    "minItems": 1,
                    "maxItems": max_endpoints,
                    "uniqueItems": True,
                },
                "timeout": {
                    "type": "number",
                    "exclusiveMinimum": 0,
                    "maximum": max_timeout,
                    "description": "Seconds one endpoint's run may take; left out: manager.execution_timeout.",
                },
                "max_concurrency": _limit(1, "At most this many endpoints run the task at once."),
                "max_errors": _limit(0, "Once more endpoints failed or timed out, the rest is skipped."),
            },
        },
        "Task": _task(with_payload=True),
        # GET /<type>: a page of the history, each task without its payload.
        "TaskListed": _task(with_payload=False),
        "TaskPage": _object(
            tasks={"type": "array", "items": ref("TaskListed")},
            next={
                "type": ["string", "null"],
                "description": "The cursor of the next page; null: no more tasks. A page may hold fewer than "
                "`limit` tasks while it is not null.",
            },
        ),
        "TaskResponse": _optional(
            _object(
                id={"type": "integer"},
                task_id={"type": "integer"},
                endpoint=ref("Name"),
                status={"type": "integer", "enum": [status.value for status in ResponseStatus]},
                errnr={"type": "integer"},
                errmsg={"type": ["string", "null"]},
                payload={},
                attempts={"type": "integer", "minimum": 0},
                start_time=ref("Time"),
                last_modified_time=ref("Time"),
                state={"type": "string", "enum": [state.value for state in ResponseState]},
                run={"type": "integer", "minimum": 1},
                deadline=ref("Time"),
                progress={"type": ["number", "null"], "minimum": 0, "maximum": 100},
                progress_message={"type": ["string", "null"]},
                **_OUTPUT_KEYS,
            ),
            runs={"type": "array", "items": ref("Run")},
        ),
        "Retry": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "endpoints": {
                    "description": "A selection by state, or the endpoints to retry by name.",
                    "default": "failed",
                    "oneOf": [
                        {"type": "string", "enum": list(RETRY_SELECTIONS)},
                        {
                            "type": "array",
                            "items": ref("Name"),
                            "minItems": 1,
                            "maxItems": max_endpoints,
                            "uniqueItems": True,
                        },
                    ],
                },
                "after_run": {
                    "type": ["integer", "null"],
                    "minimum": 0,
                    "description": "Safe repeats: if a run after this one exists, nothing starts (200).",
                },
            },
        },
        "Run": _object(
            run={"type": "integer", "minimum": 1},
            state={"type": "string", "enum": [state.value for state in ResponseState]},
            status={"type": "integer", "enum": [status.value for status in ResponseStatus]},
            errnr={"type": "integer"},
            errmsg={"type": ["string", "null"]},
            payload={},
            attempts={"type": "integer", "minimum": 0},
            start_time=ref("Time"),
            last_modified_time=ref("Time"),
            deadline=ref("Time"),
            **_OUTPUT_KEYS,
        ),
        "TaskRead": _object(
            task={
                "allOf": [
                    ref("Task"),
                    _object(**_SETTLING),
                ]
            },
            taskResponseList={"type": "array", "items": ref("TaskResponse")},
        ),
        "Error": _object(
            error=_object(
                status={"type": "integer", "enum": sorted(ERRORS)},
                message={"type": "string"},
            )
        ),
        "Endpoint": _object(
            type={"type": "string"},
            endpoint=ref("Name"),
            registered_at=ref("Time"),
            last_seen=ref("Time"),
            alive={
                "type": ["boolean", "null"],
                "description": "Seen within 3 heartbeat intervals; null: its manager predates heartbeats.",
            },
            heartbeat_interval={"type": ["number", "null"], "description": "Seconds between its heartbeats."},
            host={"type": ["string", "null"]},
            pid={"type": ["integer", "null"]},
            version={"type": ["string", "null"]},
            running={"type": ["string", "null"], "description": "The identifier of the task it runs; null: idle."},
            queued={
                "type": ["integer", "null"],
                "minimum": 0,
                "description": "Messages waiting for it, as of its last heartbeat.",
            },
        ),
        "Endpoints": _object(endpoints={"type": "array", "items": ref("Endpoint")}),
        "Health": {
            "type": "object",
            "required": ["status"],
            "properties": {
                "status": {"type": "string", "enum": ["ok", "degraded"]},
                "database": {"type": "string"},
                "broker": {"type": "string"},
                "loop_lag_ms": {
                    "type": "number",
                    "description": "The longest the API's event loop was held in the last minute (with a token).",
                },
                "waiters": {
                    "type": "integer",
                    "minimum": 0,
                    "description": "Requests of this API process waiting for a task to settle (`?wait`).",
                },
                "event_streams": {
                    "type": "integer",
                    "minimum": 0,
                    "description": "`GET /events` streams this API process serves.",
                },
            },
        },
    }


def _task(with_payload: bool) -> dict[str, Any]:
    """A task as the API shows it: with its payload (POST, GET of the task), or without it
    and with its responses' counts and settled flag (the history)."""
    payload = {"payload": {}} if with_payload else {}
    settling = {} if with_payload else _SETTLING
    return _optional(
        _object(
            id={"type": "integer"},
            identifier=ref("Name"),
            type={"type": "string"},
            **payload,
            endpoints={"type": "array", "items": ref("Name")},
            status={"type": "string", "enum": [status.value for status in TaskStatus]},
            start_time=ref("Time"),
            last_modified_time=ref("Time"),
            deadline=ref("Time"),
            **settling,
        ),
        cancel_requested=ref("Time"),
        timeout={"type": "number"},
        max_concurrency=_limit(1, "As the task was created."),
        max_errors=_limit(0, "As the task was created."),
    )


# What a read task says of its responses: how many are in each state, and whether all are final.
_SETTLING: dict[str, Any] = {
    "counts": {
        "type": "object",
        "required": [state.value for state in ResponseState],
        "properties": {state.value: {"type": "integer", "minimum": 0} for state in ResponseState},
    },
    "settled": {"type": "boolean"},
}


def _object(**properties: Any) -> dict[str, Any]:
    """An object schema whose every property is required."""
    return {"type": "object", "required": list(properties), "properties": properties}


def _optional(schema: dict[str, Any], **properties: Any) -> dict[str, Any]:
    """The object schema with properties that are there only sometimes."""
    return dict(schema, properties=dict(schema["properties"], **properties))


def _limit(least: int, description: str) -> dict[str, Any]:
    """max_concurrency or max_errors: an integer, or a percentage of the task's endpoints."""
    return {
        "description": description + ' An integer, or a percentage of the endpoints such as "25%".',
        "oneOf": [
            {"type": "integer", "minimum": least, "maximum": MAX_LIMIT},
            {"type": "string", "pattern": PERCENT.pattern if least == 0 else "^(100|[1-9][0-9]?)%$"},
        ],
    }


def ref(name: str) -> dict[str, str]:
    """A reference to the component schema `name`."""
    return {"$ref": "#/components/schemas/%s" % name}


def secure(operation: dict[str, Any], secured: bool) -> dict[str, Any]:
    """`operation` with the bearer token required, and its 401, when the API wants tokens."""
    if secured:
        operation["security"] = [{"bearer": []}]
        operation["responses"].update(error_refs(401))
    return operation


def error_refs(*statuses: int) -> dict[str, Any]:
    """The responses of `statuses`, as references to the document's shared error responses."""
    return {str(status): {"$ref": "#/components/responses/%s" % ERRORS[status][0]} for status in statuses}


def error_response(status: int) -> dict[str, Any]:
    """The shared response of an error status: the Error body, and its headers."""
    response: dict[str, Any] = {"description": ERRORS[status][1], "content": json_media(ref("Error"))}
    if status == 405:
        response["headers"] = {"Allow": {"description": "The methods of the path.", "schema": {"type": "string"}}}
    elif status == 401:
        response["headers"] = {"WWW-Authenticate": {"schema": {"type": "string"}}}
    return response


def json_media(schema: dict[str, Any], example: Any = None) -> dict[str, Any]:
    """An `application/json` content of `schema`, with an example."""
    media: dict[str, Any] = {"schema": schema}
    if example is not None:
        media["example"] = example
    return {"application/json": media}
