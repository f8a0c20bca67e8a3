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
from tasker.api.openapi_fleet import (
    deregister_operation,
    endpoints_operation,
    health_operation,
    metrics_operation,
    openapi_operation,
)
from tasker.api.schemas import ERRORS, component_schemas, error_refs, error_response, json_media, ref, secure
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
        "/health": {"get": health_operation()},
        "/openapi.json": {"get": openapi_operation()},
        "/metrics": {"get": metrics_operation(metrics_secured)},
        "/endpoints": {"get": endpoints_operation(config.task_types, secured)},
        "/endpoints/{type}/{endpoint}": {"delete": deregister_operation(config.task_types, secured)},
        "/events": {"get": secure(events_operation(config.task_types), secured)},
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
        "responses": {ERRORS[status][0]: error_response(status) for status in ERRORS},
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
        "requestBody": {"required": True, "content": json_media(ref("NewTask"), example=NEW_TASK_EXAMPLE)},
        "responses": {
            "201": {
                "description": "Stored and sent: status SENT.",
                "headers": located,
                "content": json_media(ref("Task")),
            },
            "200": {"description": "A safe retry: the stored task, sent once.", "content": json_media(ref("Task"))},
            "202": {
                "description": "Stored, not confirmed sent: status CREATED; the outbox sends it.",
                "headers": located,
                "content": json_media(ref("Task")),
            },
            **error_refs(400, 409, 413, 415, 503),
        },
    }
    return secure(operation, secured)


def _history_operation(task_type: str, secured: bool) -> dict[str, Any]:
    operation = {
        "operationId": "history_%s" % task_type,
        "summary": "List %s tasks, newest first, filtered, a page at a time (without payloads)" % task_type,
        "description": "Tasks in the order of their start_time and id, newest first. Follow `next` (the "
        "`cursor` of the next page) until it is null: a page may hold fewer than `limit` tasks before then. "
        "Settled tasks are deleted `api.retention_days` after they were created and last changed.",
        "parameters": openapi_parameters(ref("Name"), ref("Time")),
        "responses": {
            "200": {"description": "One page of tasks.", "content": json_media(ref("TaskPage"))},
            **error_refs(400, 503),
        },
    }
    return secure(operation, secured)


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
            "200": {"description": "The task and its responses.", "content": json_media(ref("TaskRead"))},
            **error_refs(400, 404, 503),
        },
    }
    return secure(operation, secured)


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
        "requestBody": {"required": False, "content": json_media(ref("Retry"), example={"endpoints": "failed"})},
        "responses": {
            "202": {"description": "A new run started for the selected endpoints.", "content": json_media(ref("Task"))},
            "200": {
                "description": "after_run: the run was started already; nothing new.",
                "content": json_media(ref("Task")),
            },
            **error_refs(400, 403, 404, 409, 413, 415, 503),
        },
    }
    return secure(operation, secured)


# A cancel takes no body, or an empty object; like a retry, it needs Content-Type: application/json.
_NO_BODY = {"type": "object", "maxProperties": 0}


def _cancel_operation(task_type: str, secured: bool) -> dict[str, Any]:
    operation = {
        "operationId": "cancel_%s" % task_type,
        "summary": "Cancel a %s task: runs not started are skipped, running ones stopped" % task_type,
        "description": _OPERATING,
        "parameters": [_identifier_parameter()],
        "requestBody": {"required": False, "content": json_media(_NO_BODY, example={})},
        "responses": {
            "202": {"description": "The cancel is recorded (again, if repeated).", "content": json_media(ref("Task"))},
            **error_refs(400, 403, 404, 409, 413, 415, 503),
        },
    }
    return secure(operation, secured)


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
            **error_refs(400, 404, 503),
        },
    }
    return secure(operation, secured)


def _identifier_parameter() -> dict[str, Any]:
    return {
        "name": "identifier",
        "in": "path",
        "required": True,
        "schema": ref("Name"),
        "example": NEW_TASK_EXAMPLE["identifier"],
    }
