"""Build the Tornado application from the configuration: routes for each task type."""

from __future__ import annotations

import tornado.web

from tasker.api.actions import TaskActionHandler
from tasker.api.dispatch import Dispatcher
from tasker.api.handlers import HealthHandler, NotFoundHandler, OpenApiHandler, TaskCollectionHandler, TaskItemHandler
from tasker.api.loop_watch import LoopWatch
from tasker.api.openapi import openapi_document
from tasker.api.output import TaskOutputHandler
from tasker.api.parsing import BodyParser
from tasker.config import Config


def make_app(
    config: Config, dispatcher: Dispatcher, body_parser: BodyParser, loop_watch: LoopWatch
) -> tornado.web.Application:
    """The API of `config`, reaching storage and broker through `dispatcher`."""
    routes: list = [(r"/health", HealthHandler, {"dispatcher": dispatcher, "loop_watch": loop_watch})]
    routes.append((r"/openapi\.json", OpenApiHandler, {"document": openapi_document(config)}))
    for task_type in config.task_types:
        options = {"dispatcher": dispatcher, "task_type": task_type}
        routes.append((r"/%s" % task_type, TaskCollectionHandler, options))
        routes.append((r"/%s/([^/]+)" % task_type, TaskItemHandler, options))
        routes.append((r"/%s/([^/]+)/(retry|cancel)" % task_type, TaskActionHandler, options))
        routes.append((r"/%s/([^/]+)/output" % task_type, TaskOutputHandler, options))
    return tornado.web.Application(
        routes,
        default_handler_class=NotFoundHandler,
        task_types=config.task_types,
        max_body_size=config.api.max_body_size,
        tokens=config.api.tokens,
        body_parser=body_parser,
        max_endpoints=config.api.max_endpoints,
    )
