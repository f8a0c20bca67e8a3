"""The parts of the OpenAPI document about the fleet and the API itself: `GET /endpoints`,
`DELETE /endpoints/{type}/{endpoint}`, `/metrics`, `/health` and `/openapi.json`.
"""

from __future__ import annotations

from typing import Any

from tasker.api.schemas import error_refs, json_media, ref, secure


def endpoints_operation(task_types: tuple[str, ...], secured: bool) -> dict[str, Any]:
    """`GET /endpoints`."""
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
            "200": {"description": "Every registered endpoint (of the type).", "content": json_media(ref("Endpoints"))},
            **error_refs(400, 404, 503),
        },
    }
    return secure(operation, secured)


def deregister_operation(task_types: tuple[str, ...], secured: bool) -> dict[str, Any]:
    """`DELETE /endpoints/{type}/{endpoint}`."""
    parameters = [
        {"name": "type", "in": "path", "required": True, "schema": {"type": "string", "enum": list(task_types)}},
        {"name": "endpoint", "in": "path", "required": True, "schema": ref("Name"), "example": "console1"},
    ]
    error = json_media(ref("Error"))
    operation = {
        "operationId": "deregister_endpoint",
        "summary": "Deregister an endpoint whose manager is gone; delete its queue, with what it holds, and exchange",
        "parameters": parameters,
        "responses": {
            "204": {"description": "Deregistered: tasks without endpoints no longer go to it."},
            "404": {"description": "No such task type, or the endpoint is not registered for it.", "content": error},
            "409": {"description": "It is alive, or its queue still has a consumer.", "content": error},
            "503": {"description": "The database or the broker did not do it; DELETE again.", "content": error},
            **error_refs(400),
        },
    }
    return secure(operation, secured)


def health_operation() -> dict[str, Any]:
    """`GET /health`, open without a token."""
    return {
        "operationId": "health",
        "summary": "Whether this API process reaches its database (and the broker); open without a token",
        "responses": {
            "200": {"description": "The database answers.", "content": json_media(ref("Health"))},
            "503": {"description": "The database does not answer.", "content": json_media(ref("Health"))},
        },
    }


def openapi_operation() -> dict[str, Any]:
    """`GET /openapi.json`, open without a token."""
    return {
        "operationId": "openapi",
        "summary": "This description of the API; open without a token",
        "responses": {"200": {"description": "An OpenAPI 3.1 document.", "content": json_media({"type": "object"})}},
    }


def metrics_operation(secured: bool) -> dict[str, Any]:
    """`GET /metrics`."""
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
    return secure(operation, secured)
