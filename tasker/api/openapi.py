"""The OpenAPI 3.1 description of the API, built from the configuration like the routes.

What it promises is checked against real answers by tests/e2e/test_openapi.py, which also
fuzzes the API from it: keep it true when a handler changes.
"""

from __future__ import annotations

from typing import Any

import tasker
from tasker.config import Config
from tasker.lifecycle import MAX_LIMIT, PERCENT, RETRY_SELECTIONS
from tasker.status import ResponseState, ResponseStatus, TaskStatus

OPENAPI_VERSION = "3.1.0"
# tasker.config.NAME_PATTERN, in JSON Schema's (ECMA-262) reading: `$` is the end of the string only.
NAME_PATTERN = r"^[A-Za-z0-9._:-]{1,50}$"
TIME_PATTERN = r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$"

# The error answers the API gives: the name of each in `#/components/responses`, and when (README "Errors").
ERRORS = {
    400: ("BadRequest", "Malformed: not JSON, not an object, an unknown key, a wrong type or value, a path not UTF-8."),
    401: ("Unauthorized", "No valid bearer token (only when `api.tokens` is configured)."),
    404: ("NotFound", "No such path or task type, no task with this identifier, or (output) no such endpoint or run."),
    405: ("MethodNotAllowed", "The path does not serve this method; `Allow` lists those it does."),
    409: ("Conflict", "The identifier exists for this type with another payload or other endpoints."),
    413: ("PayloadTooLarge", "The body is over `api.max_body_size`; answered from the headers, before it is read."),
    415: ("UnsupportedMediaType", "The Content-Type is not application/json."),
    503: ("ServiceUnavailable", "The database cannot be reached: nothing was stored."),
}


# What a client sends to deploy a version to two servers: the document's example request.
NEW_TASK_EXAMPLE = {
    "identifier": "deploy-1.4.2",
    "payload": {"version": "1.4.2"},
    "endpoints": ["console1", "console2"],
}


def openapi_document(config: Config) -> dict[str, Any]:
    """The OpenAPI document of the API that `config` describes: every task type, health, itself."""
    secured = bool(config.api.tokens)
    paths: dict[str, Any] = {
        "/health": {"get": _health_operation()},
        "/openapi.json": {"get": _openapi_operation()},
    }
    for task_type in config.task_types:
        paths["/%s" % task_type] = {"post": _create_operation(task_type, secured)}
        paths["/%s/{identifier}" % task_type] = {"get": _read_operation(task_type, secured)}
        paths["/%s/{identifier}/retry" % task_type] = {"post": _retry_operation(task_type, secured)}
        paths["/%s/{identifier}/cancel" % task_type] = {"post": _cancel_operation(task_type, secured)}
        paths["/%s/{identifier}/output" % task_type] = {"get": _output_operation(task_type, secured)}
    components: dict[str, Any] = {
        "schemas": component_schemas(config.api.max_endpoints, config.api.max_timeout),
        "responses": {ERRORS[status][0]: _error_response(status) for status in ERRORS},
        "headers": {"Location": {"description": "/<task_type>/<identifier>", "schema": {"type": "string"}}},
    }
    if secured:
        components["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "tasker",
            "version": tasker.__version__,
            "description": "Fan a task out to named endpoints over RabbitMQ and collect each endpoint's result.",
        },
        "paths": paths,
        "components": components,
    }


def component_schemas(max_endpoints: int, max_timeout: float = 86400.0) -> dict[str, Any]:
    """The JSON schemas of request and answer bodies, by name (`#/components/schemas/<name>`)."""
    name = {"type": "string", "pattern": NAME_PATTERN}
    time = {"type": "string", "pattern": TIME_PATTERN}
    return {
        "Name": name,
        "Time": time,
        "NewTask": {
            "type": "object",
            "required": ["identifier"],
            "additionalProperties": False,
            "properties": {
                "identifier": _ref("Name"),
                "payload": {"description": "Any JSON value for the task handler.", "default": ""},
                "endpoints": {
                    "type": "array",
                    "description": "Left out: every endpoint registered for the type.",
                    "items": _ref("Name"),
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
        "Task": _optional(
            _object(
                id={"type": "integer"},
                identifier=_ref("Name"),
                type={"type": "string"},
                payload={},
                endpoints={"type": "array", "items": _ref("Name")},
                status={"type": "string", "enum": [status.value for status in TaskStatus]},
                start_time=_ref("Time"),
                last_modified_time=_ref("Time"),
                deadline=_ref("Time"),
            ),
            cancel_requested=_ref("Time"),
            timeout={"type": "number"},
            max_concurrency=_limit(1, "As the task was created."),
            max_errors=_limit(0, "As the task was created."),
        ),
        "TaskResponse": _optional(
            _object(
                id={"type": "integer"},
                task_id={"type": "integer"},
                endpoint=_ref("Name"),
                status={"type": "integer", "enum": [status.value for status in ResponseStatus]},
                errnr={"type": "integer"},
                errmsg={"type": ["string", "null"]},
                payload={},
                attempts={"type": "integer", "minimum": 0},
                start_time=_ref("Time"),
                last_modified_time=_ref("Time"),
                state={"type": "string", "enum": [state.value for state in ResponseState]},
                run={"type": "integer", "minimum": 1},
                deadline=_ref("Time"),
                progress={"type": ["number", "null"], "minimum": 0, "maximum": 100},
                progress_message={"type": ["string", "null"]},
                **_OUTPUT_KEYS,
            ),
            runs={"type": "array", "items": _ref("Run")},
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
                            "items": _ref("Name"),
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
            start_time=_ref("Time"),
            last_modified_time=_ref("Time"),
            deadline=_ref("Time"),
            **_OUTPUT_KEYS,
        ),
        "TaskRead": _object(
            task={
                "allOf": [
                    _ref("Task"),
                    _object(
                        counts=_object(**{state.value: {"type": "integer", "minimum": 0} for state in ResponseState}),
                        settled={"type": "boolean"},
                    ),
                ]
            },
            taskResponseList={"type": "array", "items": _ref("TaskResponse")},
        ),
        "Error": _object(
            error=_object(
                status={"type": "integer", "enum": sorted(ERRORS)},
                message={"type": "string"},
            )
        ),
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
            },
        },
    }


def _create_operation(task_type: str, secured: bool) -> dict[str, Any]:
    located = {"Location": {"$ref": "#/components/headers/Location"}}
    operation = {
        "operationId": "create_%s" % task_type,
        "summary": "Create a %s task and send it to its endpoints" % task_type,
        "requestBody": {"required": True, "content": _json(_ref("NewTask"), example=NEW_TASK_EXAMPLE)},
        "responses": {
            "201": {"description": "Stored and sent: status SENT.", "headers": located, "content": _json(_ref("Task"))},
            "200": {"description": "A safe retry: the stored task, sent once.", "content": _json(_ref("Task"))},
            "202": {
                "description": "Stored, not confirmed sent: status CREATED; the outbox sends it.",
                "headers": located,
                "content": _json(_ref("Task")),
            },
            **_errors(400, 409, 413, 415, 503),
        },
    }
    return _secure(operation, secured)


def _read_operation(task_type: str, secured: bool) -> dict[str, Any]:
    operation = {
        "operationId": "read_%s" % task_type,
        "summary": "Read a %s task and every endpoint's response" % task_type,
        "parameters": [
            _identifier_parameter(),
            {
                "name": "runs",
                "in": "query",
                "required": False,
                "description": "`all`: each response lists its earlier runs (`runs`), oldest first.",
                "schema": {"type": "string", "enum": ["all"]},
            },
        ],
        "responses": {
            "200": {"description": "The task and its responses.", "content": _json(_ref("TaskRead"))},
            **_errors(400, 404, 503),
        },
    }
    return _secure(operation, secured)


def _retry_operation(task_type: str, secured: bool) -> dict[str, Any]:
    operation = {
        "operationId": "retry_%s" % task_type,
        "summary": "Start a new run of a %s task for the endpoints selected (default: those that failed)" % task_type,
        "parameters": [_identifier_parameter()],
        "requestBody": {"required": False, "content": _json(_ref("Retry"), example={"endpoints": "failed"})},
        "responses": {
            "202": {"description": "A new run started for the selected endpoints.", "content": _json(_ref("Task"))},
            "200": {
                "description": "after_run: the run was started already; nothing new.",
                "content": _json(_ref("Task")),
            },
            **_errors(400, 404, 409, 413, 415, 503),
        },
    }
    return _secure(operation, secured)


def _cancel_operation(task_type: str, secured: bool) -> dict[str, Any]:
    operation = {
        "operationId": "cancel_%s" % task_type,
        "summary": "Cancel a %s task: runs not started are skipped, running ones stopped" % task_type,
        "parameters": [_identifier_parameter()],
        "responses": {
            "202": {"description": "The cancel is recorded (again, if repeated).", "content": _json(_ref("Task"))},
            **_errors(400, 404, 409, 413, 415, 503),
        },
    }
    return _secure(operation, secured)


# What a response and each earlier run say of their run's output (null until its end is recorded).
_OUTPUT_KEYS = {
    "output_size": {"type": ["integer", "null"], "minimum": 0, "description": "Bytes of UTF-8 the run wrote."},
    "output_tail": {"type": ["string", "null"], "description": "The last 2,000 characters of its output."},
}
_RUN_NUMBER = {"type": "integer", "minimum": 1, "maximum": 2**31 - 1}
# The headers of an output answer: which run it is, where it stands, what the run wrote in all.
_OUTPUT_HEADERS = {
    "X-Content-Type-Options": {"required": True, "schema": {"type": "string", "enum": ["nosniff"]}},
    "X-Tasker-Run": {"required": True, "description": "The run's number.", "schema": {"type": "integer"}},
    "X-Tasker-Run-State": {
        "required": True,
        "description": "The run's state; one not ended has no output stored yet.",
        "schema": {"type": "string", "enum": [state.value for state in ResponseState]},
    },
    "X-Tasker-Output-Size": {
        "description": "Bytes the run wrote (more than the text when it was cut); once it ended.",
        "schema": {"type": "integer", "minimum": 0},
    },
}


def _output_operation(task_type: str, secured: bool) -> dict[str, Any]:
    query = [
        ("endpoint", True, "The endpoint whose run it is.", _ref("Name")),
        ("run", False, "A run number, current or earlier (default: the current run).", _RUN_NUMBER),
    ]
    parameters = [_identifier_parameter()]
    parameters += [{"name": n, "in": "query", "required": r, "description": d, "schema": s} for n, r, d, s in query]
    text = {"text/plain": {"schema": {"type": "string"}}}
    operation = {
        "operationId": "output_%s" % task_type,
        "summary": "Read the output of an endpoint's run of a %s task, as plain text" % task_type,
        "parameters": parameters,
        "responses": {
            "200": {"description": "The output as stored.", "headers": _OUTPUT_HEADERS, "content": text},
            **_errors(400, 404, 503),
        },
    }
    return _secure(operation, secured)


def _identifier_parameter() -> dict[str, Any]:
    return {
        "name": "identifier",
        "in": "path",
        "required": True,
        "schema": _ref("Name"),
        "example": NEW_TASK_EXAMPLE["identifier"],
    }


def _health_operation() -> dict[str, Any]:
    return {
        "operationId": "health",
        "summary": "Whether this API process reaches its database (and the broker); open without a token",
        "responses": {
            "200": {"description": "The database answers.", "content": _json(_ref("Health"))},
            "503": {"description": "The database does not answer.", "content": _json(_ref("Health"))},
        },
    }


def _openapi_operation() -> dict[str, Any]:
    return {
        "operationId": "openapi",
        "summary": "This description of the API; open without a token",
        "responses": {"200": {"description": "An OpenAPI 3.1 document.", "content": _json({"type": "object"})}},
    }


def _secure(operation: dict[str, Any], secured: bool) -> dict[str, Any]:
    if secured:
        operation["security"] = [{"bearer": []}]
        operation["responses"].update(_errors(401))
    return operation


def _errors(*statuses: int) -> dict[str, Any]:
    return {str(status): {"$ref": "#/components/responses/%s" % ERRORS[status][0]} for status in statuses}


def _error_response(status: int) -> dict[str, Any]:
    response: dict[str, Any] = {"description": ERRORS[status][1], "content": _json(_ref("Error"))}
    if status == 405:
        response["headers"] = {"Allow": {"description": "The methods of the path.", "schema": {"type": "string"}}}
    elif status == 401:
        response["headers"] = {"WWW-Authenticate": {"schema": {"type": "string"}}}
    return response


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


def _ref(name: str) -> dict[str, str]:
    return {"$ref": "#/components/schemas/%s" % name}


def _json(schema: dict[str, Any], example: Any = None) -> dict[str, Any]:
    media: dict[str, Any] = {"schema": schema}
    if example is not None:
        media["example"] = example
    return {"application/json": media}
