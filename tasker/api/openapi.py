"""The OpenAPI 3.1 description of the API, built from the configuration like the routes.

This module writes the paths and their operations; the schemas of the bodies they take and
answer are in `tasker.api.schemas`. What it promises is checked against real answers by
tests/e2e/test_openapi.py, which also fuzzes the API from it: keep it true when a handler changes.
"""

from __future__ import annotations

from typing import Any

import tasker
from tasker.api.history import openapi_parameters
from tasker.api.openapi_events import event_schemas, events_operation, wait_parameter
from tasker.api.schemas import ERRORS, component_schemas, ref
from tasker.config import Config
from tasker.status import ResponseState

OPENAPI_VERSION = "3.1.0"

# What a client sends to deploy a version to two servers: the document's example request.
NEW_TASK_EXAMPLE = {
    "identifier": "deploy-1.4.2",
    "payload": {"version": "1.4.2"},
    "endpoints": ["console1", "console2"],
}


def openapi_document(config: Config) -> dict[str, Any]:
    """The OpenAPI document of the API that `config` describes: every task type, health, itself."""
    secured = bool(config.api.tokens)
    metrics = config.api.metrics
    metrics_secured = metrics.auth == "tokens" and bool(config.api.tokens or metrics.tokens)
    paths: dict[str, Any] = {
        "/health": {"get": _health_operation()},
        "/openapi.json": {"get": _openapi_operation()},
        "/metrics": {"get": _metrics_operation(metrics_secured)},
        "/endpoints": {"get": _endpoints_operation(config.task_types, secured)},
        "/endpoints/{type}/{endpoint}": {"delete": _deregister_operation(config.task_types, secured)},
        "/events": {"get": _secure(events_operation(config.task_types), secured)},
    }
    for task_type in config.task_types:
        paths["/%s" % task_type] = {
            "get": _history_operation(task_type, secured),
            "post": _create_operation(task_type, secured),
        }
        paths["/%s/{identifier}" % task_type] = {"get": _read_operation(task_type, secured)}
        paths["/%s/{identifier}/retry" % task_type] = {"post": _retry_operation(task_type, secured)}
        paths["/%s/{identifier}/cancel" % task_type] = {"post": _cancel_operation(task_type, secured)}
        paths["/%s/{identifier}/output" % task_type] = {"get": _output_operation(task_type, secured)}
    components: dict[str, Any] = {
        "schemas": {**component_schemas(config.api.max_endpoints, config.api.max_timeout), **event_schemas()},
        "responses": {ERRORS[status][0]: _error_response(status) for status in ERRORS},
        "headers": {"Location": {"description": "/<task_type>/<identifier>", "schema": {"type": "string"}}},
    }
    if secured or metrics_secured:
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


def _create_operation(task_type: str, secured: bool) -> dict[str, Any]:
    located = {"Location": {"$ref": "#/components/headers/Location"}}
    operation = {
        "operationId": "create_%s" % task_type,
        "summary": "Create a %s task and send it to its endpoints" % task_type,
        "requestBody": {"required": True, "content": _json(ref("NewTask"), example=NEW_TASK_EXAMPLE)},
        "responses": {
            "201": {"description": "Stored and sent: status SENT.", "headers": located, "content": _json(ref("Task"))},
            "200": {"description": "A safe retry: the stored task, sent once.", "content": _json(ref("Task"))},
            "202": {
                "description": "Stored, not confirmed sent: status CREATED; the outbox sends it.",
                "headers": located,
                "content": _json(ref("Task")),
            },
            **_errors(400, 409, 413, 415, 503),
        },
    }
    return _secure(operation, secured)


def _history_operation(task_type: str, secured: bool) -> dict[str, Any]:
    operation = {
        "operationId": "history_%s" % task_type,
        "summary": "List %s tasks, newest first, filtered, a page at a time (without payloads)" % task_type,
        "description": "Tasks in the order of their start_time and id, newest first. Follow `next` (the "
        "`cursor` of the next page) until it is null: a page may hold fewer than `limit` tasks before then. "
        "Settled tasks are deleted `api.retention_days` after they were created and last changed.",
        "parameters": openapi_parameters(ref("Name"), ref("Time")),
        "responses": {
            "200": {"description": "One page of tasks.", "content": _json(ref("TaskPage"))},
            **_errors(400, 503),
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
            wait_parameter(),
        ],
        "responses": {
            "200": {"description": "The task and its responses.", "content": _json(ref("TaskRead"))},
            **_errors(400, 404, 503),
        },
    }
    return _secure(operation, secured)


# What retry and cancel ask of every request, so that another web page cannot send one.
_OPERATING = (
    "Needs `Content-Type: application/json`, with or without a body (else 415); a request whose `Origin` is "
    "not the API's own is refused (403)."
)


def _retry_operation(task_type: str, secured: bool) -> dict[str, Any]:
    operation = {
        "operationId": "retry_%s" % task_type,
        "summary": "Start a new run of a %s task for the endpoints selected (default: those that failed)" % task_type,
        "description": _OPERATING,
        "parameters": [_identifier_parameter()],
        "requestBody": {"required": False, "content": _json(ref("Retry"), example={"endpoints": "failed"})},
        "responses": {
            "202": {"description": "A new run started for the selected endpoints.", "content": _json(ref("Task"))},
            "200": {
                "description": "after_run: the run was started already; nothing new.",
                "content": _json(ref("Task")),
            },
            **_errors(400, 403, 404, 409, 413, 415, 503),
        },
    }
    return _secure(operation, secured)


# A cancel takes no body, or an empty object; like a retry, it needs Content-Type: application/json.
_NO_BODY = {"type": "object", "maxProperties": 0}


def _cancel_operation(task_type: str, secured: bool) -> dict[str, Any]:
    operation = {
        "operationId": "cancel_%s" % task_type,
        "summary": "Cancel a %s task: runs not started are skipped, running ones stopped" % task_type,
        "description": _OPERATING,
        "parameters": [_identifier_parameter()],
        "requestBody": {"required": False, "content": _json(_NO_BODY, example={})},
        "responses": {
            "202": {"description": "The cancel is recorded (again, if repeated).", "content": _json(ref("Task"))},
            **_errors(400, 403, 404, 409, 413, 415, 503),
        },
    }
    return _secure(operation, secured)


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
        ("endpoint", True, "The endpoint whose run it is.", ref("Name")),
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


def _endpoints_operation(task_types: tuple[str, ...], secured: bool) -> dict[str, Any]:
    type_filter = {
        "name": "type",
        "in": "query",
        "required": False,
        "description": "Only this task type's endpoints; a type not configured is a 404.",
        "schema": {"type": "string", "enum": list(task_types)},
    }
    operation = {
        "operationId": "endpoints",
        "summary": "The registered endpoints, by type and endpoint, with what their managers' heartbeats say",
        "parameters": [type_filter],
        "responses": {
            "200": {"description": "Every registered endpoint (of the type).", "content": _json(ref("Endpoints"))},
            **_errors(400, 404, 503),
        },
    }
    return _secure(operation, secured)


def _deregister_operation(task_types: tuple[str, ...], secured: bool) -> dict[str, Any]:
    parameters = [
        {"name": "type", "in": "path", "required": True, "schema": {"type": "string", "enum": list(task_types)}},
        {"name": "endpoint", "in": "path", "required": True, "schema": ref("Name"), "example": "console1"},
    ]
    error = _json(ref("Error"))
    operation = {
        "operationId": "deregister_endpoint",
        "summary": "Deregister an endpoint whose manager is gone; delete its queue, with what it holds, and exchange",
        "parameters": parameters,
        "responses": {
            "204": {"description": "Deregistered: tasks without endpoints no longer go to it."},
            "404": {"description": "No such task type, or the endpoint is not registered for it.", "content": error},
            "409": {"description": "It is alive, or its queue still has a consumer.", "content": error},
            "503": {"description": "The database or the broker did not do it; DELETE again.", "content": error},
            **_errors(400),
        },
    }
    return _secure(operation, secured)


def _identifier_parameter() -> dict[str, Any]:
    return {
        "name": "identifier",
        "in": "path",
        "required": True,
        "schema": ref("Name"),
        "example": NEW_TASK_EXAMPLE["identifier"],
    }


def _health_operation() -> dict[str, Any]:
    return {
        "operationId": "health",
        "summary": "Whether this API process reaches its database (and the broker); open without a token",
        "responses": {
            "200": {"description": "The database answers.", "content": _json(ref("Health"))},
            "503": {"description": "The database does not answer.", "content": _json(ref("Health"))},
        },
    }


def _openapi_operation() -> dict[str, Any]:
    return {
        "operationId": "openapi",
        "summary": "This description of the API; open without a token",
        "responses": {"200": {"description": "An OpenAPI 3.1 document.", "content": _json({"type": "object"})}},
    }


def _metrics_operation(secured: bool) -> dict[str, Any]:
    operation = {
        "operationId": "metrics",
        "summary": "The fleet's figures and this API process's own, in the Prometheus text format",
        "description": "Tasks, runs, the outbox, the deadline check and endpoints are read from the database "
        "(the same from every API process, at most every api.metrics.cache_seconds); the POST latency and "
        "process figures are this process's. A token of api.tokens or api.metrics.tokens, unless "
        "api.metrics.auth is none.",
        "responses": {
            "200": {
                "description": "The exposition (text format 0.0.4).",
                "content": {"text/plain; version=0.0.4": {"schema": {"type": "string"}}},
            },
        },
    }
    return _secure(operation, secured)


def _secure(operation: dict[str, Any], secured: bool) -> dict[str, Any]:
    if secured:
        operation["security"] = [{"bearer": []}]
        operation["responses"].update(_errors(401))
    return operation


def _errors(*statuses: int) -> dict[str, Any]:
    return {str(status): {"$ref": "#/components/responses/%s" % ERRORS[status][0]} for status in statuses}


def _error_response(status: int) -> dict[str, Any]:
    response: dict[str, Any] = {"description": ERRORS[status][1], "content": _json(ref("Error"))}
    if status == 405:
        response["headers"] = {"Allow": {"description": "The methods of the path.", "schema": {"type": "string"}}}
    elif status == 401:
        response["headers"] = {"WWW-Authenticate": {"schema": {"type": "string"}}}
    return response


def _json(schema: dict[str, Any], example: Any = None) -> dict[str, Any]:
    media: dict[str, Any] = {"schema": schema}
    if example is not None:
        media["example"] = example
    return {"application/json": media}
