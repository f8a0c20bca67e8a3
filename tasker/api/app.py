"""Build the Tornado application from the configuration: routes for each task type."""

from __future__ import annotations

import tornado.web

from tasker.api.actions import TaskActionHandler
from tasker.api.dispatch import Dispatcher
from tasker.api.endpoints import EndpointItemHandler, EndpointListHandler, Fleet
from tasker.api.event_hub import EventHub, event_hub_of
from tasker.api.events_handler import EventsHandler
from tasker.api.handlers import HealthHandler, NotFoundHandler, OpenApiHandler, TaskCollectionHandler, TaskItemHandler
from tasker.api.loop_watch import LoopWatch
from tasker.api.metrics import MeteredApplication, MetricsHandler
from tasker.api.openapi import openapi_document
from tasker.api.output import TaskOutputHandler
from tasker.api.parsing import BodyParser
from tasker.api.ui import dashboard_routes
from tasker.config import Config
from tasker.metrics import api_metrics
from tasker.storage import RegistrationStore


def make_app(
    config: Config,
    dispatcher: Dispatcher,
    body_parser: BodyParser,
    loop_watch: LoopWatch,
    event_hub: EventHub | None = None,
) -> tornado.web.Application:
    """The API of `config`, reaching storage and broker through `dispatcher`, and the events
    through `event_hub` (by default one not started: no events come)."""
    event_hub = event_hub or event_hub_of(config.api, dispatcher)
    routes: list = [(r"/health", HealthHandler, {"dispatcher": dispatcher, "loop_watch": loop_watch})]
    routes.append((r"/openapi\.json", OpenApiHandler, {"document": openapi_document(config)}))
    metrics = api_metrics(config.api.metrics, dispatcher.tasks.database)
    metrics_options = {"dispatcher": dispatcher, "metrics": metrics, "settings": config.api.metrics}
    routes.append((r"/metrics", MetricsHandler, metrics_options))
    fleet = Fleet(RegistrationStore(dispatcher.tasks.database), dispatcher.publisher, dispatcher.storage)
    routes.append((r"/endpoints", EndpointListHandler, {"fleet": fleet}))
    routes.append((r"/endpoints/([^/]+)/([^/]+)", EndpointItemHandler, {"fleet": fleet}))
    routes.append((r"/events", EventsHandler, {"hub": event_hub}))
    routes += dashboard_routes(config.task_types)
    for task_type in config.task_types:
        options = {"dispatcher": dispatcher, "task_type": task_type}
        routes.append((r"/%s" % task_type, TaskCollectionHandler, options))
        routes.append((r"/%s/([^/]+)" % task_type, TaskItemHandler, options))
        routes.append((r"/%s/([^/]+)/(retry|cancel)" % task_type, TaskActionHandler, options))
        routes.append((r"/%s/([^/]+)/output" % task_type, TaskOutputHandler, options))
    return MeteredApplication(
        routes,
        default_handler_class=NotFoundHandler,
        task_types=config.task_types,
        max_body_size=config.api.max_body_size,
        tokens=config.api.tokens,
        body_parser=body_parser,
        max_endpoints=config.api.max_endpoints,
        metrics=metrics,
        event_hub=event_hub,
    )
