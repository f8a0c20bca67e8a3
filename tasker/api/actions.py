"""`POST /<type>/<identifier>/retry` and `/cancel`: operating a task after it was created."""

from __future__ import annotations

from tasker.api.base import BodyHandler
from tasker.api.refusal import body_pending
from tasker.api.validation import check_identifier, parse_retry
from tasker.errors import InvalidTask, TaskNotFound


class TaskActionHandler(BodyHandler):
    """Retry some endpoints of a task, or cancel it; both answer with the task."""

    def needs_json(self) -> bool:
        # Both take an empty body; one that has a body must say it is JSON.
        return body_pending(self.request)

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
        if self.body().strip():
            raise InvalidTask("cancel takes no body")
        task = await self.dispatcher.cancel(self.task_type, identifier)
        self.answer(202, task.view())
