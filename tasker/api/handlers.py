"""Tornado request handlers of tasks (create, list, read), health, OpenAPI and unknown paths."""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any

from tasker import jsontext
from tasker.api.base import BodyHandler, JsonHandler, Refusal
from tasker.api.dispatch import Dispatcher
from tasker.api.history import history_answer, history_query
from tasker.api.loop_watch import LoopWatch
from tasker.api.validation import check_identifier
from tasker.api.waiting import WaitingRead
from tasker.errors import (
    BrokerUnavailable,
    InvalidTask,
    StorageUnavailable,
    TaskNotFound,
)
from tasker.records import ResponseRecord, RunRecord, TaskRecord, task_read_view
from tasker.storage.outbox import Outgoing

log = logging.getLogger(__name__)
# Responses a GET renders on the IOLoop (well under a millisecond); more are rendered off it.
RENDER_ON_LOOP = 50


class TaskCollectionHandler(BodyHandler):
    """`POST /<task_type>`: create a task and send it to its endpoints; `GET`: the type's
    history, a page of its tasks (tasker.api.history)."""

    async def get(self) -> None:
        text = functools.partial(self.get_query_argument, default=None, strip=False)
        query = history_query(self.task_type, self.request.query_arguments, text)
        self.finish(await self.dispatcher.storage(history_answer, self.dispatcher.history, query))

    async def post(self) -> None:
        new = await self.settings["body_parser"].parse(self.task_type, self.body())
        created = await self.dispatcher.create(new)
        task = created.task
        if not created.created:
            self.answer(200, task.view())
            return
        self.set_header("Location", "/%s/%s" % (task.type, task.identifier))
        try:
            task = task.with_status(await self.dispatcher.send(Outgoing.first(task), created.claim_until))
        except (BrokerUnavailable, StorageUnavailable) as exc:
            # Stored, and the outbox of every API process sends what is not marked SENT.
            log.warning("task %s (%s) accepted, not confirmed sent: %s", task.identifier, task.type, exc)
            self.answer(202, task.view())
            return
        log.debug("task %s (%s) sent to %s", task.identifier, task.type, ", ".join(task.endpoints))
        self.answer(201, task.view())


class TaskItemHandler(WaitingRead, JsonHandler):
    """`GET /<task_type>/<identifier>`: the task and every endpoint's response; with `?wait=S`,
    once the task is settled or after S seconds (tasker.api.waiting)."""

    async def get(self, identifier: str) -> None:
        try:
            check_identifier(identifier)
        except InvalidTask as exc:
            raise TaskNotFound("no %s task with identifier %r: %s" % (self.task_type, identifier[:60], exc)) from None
        runs = self.get_query_argument("runs", None)
        if runs not in (None, "all"):
            raise InvalidTask("runs must be all (every earlier run of each endpoint), not %r" % runs[:20])
        task, responses = await self.read_task(identifier)
        earlier = None
        if runs == "all":
            earlier = await self.dispatcher.earlier_runs(task.id)
        if len(responses) <= RENDER_ON_LOOP and not earlier:
            self.finish(_render_read(task, responses, earlier))
        else:  # a task of a thousand endpoints takes milliseconds to render: done off the IOLoop
            self.finish(await self.dispatcher.storage(_render_read, task, responses, earlier))


def _render_read(task: TaskRecord, responses: list[ResponseRecord], runs: list[RunRecord] | None) -> str:
    return jsontext.dumps(task_read_view(task, responses, runs))


class HealthHandler(JsonHandler):
    """`GET /health`: whether this API process reaches its database and broker.

    Open without a token, for load balancers; the reasons are shown only with one.
    """

    requires_token = False

    def initialize(self, dispatcher: Dispatcher, loop_watch: LoopWatch) -> None:
        super().initialize(dispatcher)
        self.loop_watch = loop_watch

    async def get(self) -> None:
        database = "ok"
        try:
            await self.dispatcher.storage(self.dispatcher.tasks.database.ping)
        except StorageUnavailable as exc:
            database = str(exc)
        broker = "ok"
        try:
            await asyncio.wait_for(self.dispatcher.publisher.connect(), 5)
        except (BrokerUnavailable, asyncio.TimeoutError) as exc:
            broker = str(exc) or "no answer within 5s"
        status = 200 if database == "ok" else 503
        body = {"status": "ok" if status == 200 else "degraded"}
        if self.has_valid_token():
            body.update(database=database, broker=broker, loop_lag_ms=round(self.loop_watch.worst() * 1000, 1))
            body.update(self.settings["event_hub"].counts())
        self.answer(status, body)


class NotFoundHandler(JsonHandler):
    """Every path that is not a configured task type."""

    def route_refusal(self) -> Refusal | None:
        task_types = ", ".join(self.settings["task_types"])
        return 404, "no such path: %s (task types: %s)" % (self.request.path, task_types), {}


class OpenApiHandler(JsonHandler):
    """`GET /openapi.json`: the OpenAPI description of this API, open without a token."""

    requires_token = False

    def initialize(self, document: dict[str, Any]) -> None:
        self.document = document

    def get(self) -> None:
        self.answer(200, self.document)
