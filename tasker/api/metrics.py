"""`GET /metrics`: the Prometheus text exposition of the fleet and of this API process, and the
application that times each POST /<type> for it.

/metrics wants a bearer token like every other route: one of `api.tokens`, or of
`api.metrics.tokens`, which are good for /metrics only (Prometheus' `authorization` setting
sends one); `api.metrics.auth: none` serves it without a token.
"""

from __future__ import annotations

import tornado.web

from tasker.api.base import JsonHandler
from tasker.api.dispatch import Dispatcher
from tasker.api.handlers import TaskCollectionHandler
from tasker.config import MetricsConfig
from tasker.metrics import CONTENT_TYPE, Metrics


class MetricsHandler(JsonHandler):
    """`GET /metrics`: the exposition, read through the dispatcher's executor when not cached."""

    def initialize(self, dispatcher: Dispatcher, metrics: Metrics, settings: MetricsConfig) -> None:
        super().initialize(dispatcher)
        self.metrics = metrics
        self.requires_token = settings.auth == "tokens"
        self.metrics_tokens = settings.tokens

    def accepted_tokens(self) -> list[str]:
        """A token of `api.tokens` or of `api.metrics.tokens` (neither: none needed)."""
        return [*self.settings["tokens"], *self.metrics_tokens]

    async def get(self) -> None:
        body = await self.metrics.render(self.dispatcher.storage)
        self.set_header("Content-Type", CONTENT_TYPE)
        self.finish(body)


class MeteredApplication(tornado.web.Application):
    """Tornado's application, which also times every answered POST /<type> for /metrics."""

    def log_request(self, handler: tornado.web.RequestHandler) -> None:
        super().log_request(handler)
        metrics = self.settings.get("metrics")
        if metrics is not None and handler.request.method == "POST" and isinstance(handler, TaskCollectionHandler):
            metrics.observe_post(handler.task_type, handler.get_status(), handler.request.request_time())
