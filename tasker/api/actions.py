"""`POST /<type>/<identifier>/retry` and `/cancel`: operating a task after it was created.

Both take JSON only and refuse another site's `Origin` (tasker.api.same_origin), so that a
web page the operator visits cannot retry or cancel tasks through the operator's browser.
"""

from __future__ import annotations

import json

from tasker.api.base import BodyHandler, Refusal
from tasker.api.same_origin import foreign_origin
from tasker.api.validation import check_identifier, parse_retry
from tasker.errors import InvalidTask, TaskNotFound


class TaskActionHandler(BodyHandler):
    """Retry some endpoints of a task, or cancel it; both answer with the task."""

    def route_refusal(self) -> Refusal | None:
        reason = foreign_origin(self.request.headers, self.request.protocol, self.request.host)
        if reason is not None:
            return 403, reason, {}
        # Then `Content-Type: application/json`, even without a body: a cross-site form cannot send it.
        return super().route_refusal()

    async def post(self, identifier: str, action: str) -> None:
        try:
            check_identifier(identifier)
        except InvalidTask as exc:
            raise TaskNotFound("no %s task with identifier %r: %s" % (self.task_type, identifier[:60], exc)) from None
        if action == "retry":
            await self._retry(identifier)
        else:
            await self._cancel(identifier)

    async def _retry(self, identifier: str) -> None:
        selection, after_run = parse_retry(self.body(), self.settings["max_endpoints"])
        task, started = await self.dispatcher.retry(self.task_type, identifier, selection, after_run)
        self.answer(202 if started else 200, task.view())

    async def _cancel(self, identifier: str) -> None:
        check_cancel_body(self.body())
        task = await self.dispatcher.cancel(self.task_type, identifier)
        self.answer(202, task.view())


def check_cancel_body(body: bytes) -> None:
    """A cancel takes no body, or an empty JSON object (what a JSON client sends for none)."""
    if not body.strip():
        return
    try:
        empty = json.loads(body.decode("utf-8")) == {}
    except (UnicodeDecodeError, ValueError, RecursionError):
        empty = False
    if not empty:
        raise InvalidTask("cancel takes no body, or an empty JSON object {}")
