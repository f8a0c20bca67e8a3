"""Load a task type's handler module and run it; a handler's exception becomes errnr 1.

Handler modules are looked up only among the configured task types: the module name comes
from the configuration, never from a message.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import logging
import traceback
from types import ModuleType
from typing import Any

from tasker.config import Config
from tasker.errors import ConfigError, HandlerModuleError
from tasker.messaging.message import TaskMessage
from tasker.status import ErrNr

log = logging.getLogger(__name__)
ERRNR_MIN, ERRNR_MAX = -(2**31), 2**31 - 1
MAX_ERRMSG = 10_000


@dataclasses.dataclass
class Task:
    """The task as `handle_task` sees it; `settings` are the type's `manager.handler_settings`."""

    id: int
    identifier: str
    type: str
    payload: Any
    endpoints: list[str]
    settings: dict[str, Any]


@dataclasses.dataclass
class TaskResponse:
    """This endpoint's response: the handler sets `payload`, `errnr` and `errmsg`."""

    task_id: int
    endpoint: str
    attempts: int
    payload: Any = None
    errnr: int = ErrNr.SUCCESS
    errmsg: str | None = None


class HandlerModule:
    """The loaded handler module of one task type."""

    def __init__(self, config: Config, task_type: str) -> None:
        self.task_type = task_type
        self.settings = dict(config.manager.handler_settings.get(task_type, {}))
        self.module = load_handler_module(config, task_type)

    def run(self, message: TaskMessage, endpoint: str, attempts: int) -> TaskResponse:
        """Run `handle_task` for one task on this endpoint; never raises for the handler's faults."""
        task = Task(
            message.id,
            message.identifier,
            message.type,
            message.payload,
            list(message.endpoints),
            dict(self.settings),
        )
        response = TaskResponse(message.id, endpoint, attempts)
        try:
            result = self.module.handle_task(task, response)
        except (Exception, SystemExit) as exc:  # a handler calling sys.exit() must not end the thread
            log.error(
                "task %s (%s) on %s: handler raised\n%s",
                message.identifier,
                message.type,
                endpoint,
                traceback.format_exc(),
            )
            return _failed(response, "%s: %s" % (type(exc).__name__, exc))
        if result is not None and result is not response:
            if not isinstance(result, TaskResponse):
                return _failed(response, "handle_task returned %s, not the taskResponse" % type(result).__name__)
            response = result
        return _checked(response)


def load_handler_module(config: Config, task_type: str) -> ModuleType:
    """Import the handler module of a configured task type and check it has `handle_task`."""
    try:
        name = config.handler_module(task_type)
    except ConfigError as exc:
        raise HandlerModuleError(str(exc)) from exc
    try:
        module = importlib.import_module(name)
    except Exception as exc:
        raise HandlerModuleError("cannot import handler module %s: %s" % (name, exc)) from exc
    if not callable(getattr(module, "handle_task", None)):
        raise HandlerModuleError("handler module %s has no handle_task(task, taskResponse)" % name)
    return module


def _checked(response: TaskResponse) -> TaskResponse:
    errnr = response.errnr
    if not isinstance(errnr, int) or isinstance(errnr, bool) or not ERRNR_MIN <= errnr <= ERRNR_MAX:
        return _failed(response, "handler set errnr to %r, not an int of 32 bits" % (errnr,))
    try:
        json.dumps(response.payload, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:
        return _failed(response, "handler set a payload that is not JSON: %s" % exc)
    if response.errmsg is not None:
        response.errmsg = _shorten(str(response.errmsg))
    return response


def _shorten(text: str) -> str:
    if len(text) <= MAX_ERRMSG:
        return text
    suffix = " ... (%d characters)" % len(text)
    return text[: MAX_ERRMSG - len(suffix)] + suffix


def _failed(response: TaskResponse, message: str) -> TaskResponse:
    response.payload = None
    response.errnr = ErrNr.GENERAL_ERROR
    response.errmsg = _shorten(message)
    return response
