"""Tornado request handlers: create and read tasks; every error is a JSON body."""

from __future__ import annotations

import asyncio
import functools
import hmac
import json
import logging
from typing import Any

import tornado.web

from tasker import jsontext
from tasker.api.dispatch import Dispatcher
from tasker.api.history import history_answer, history_query
from tasker.api.loop_watch import LoopWatch
from tasker.api.refusal import body_pending, refuse_unread
from tasker.api.validation import check_identifier
from tasker.api.waiting import WaitingRead
from tasker.errors import (
    BrokerUnavailable,
    EndpointAlive,
    EndpointNotFound,
    InvalidTask,
    Overloaded,
    RequestTooLarge,
    StatementTooLarge,
    StorageUnavailable,
    TaskConflict,
    TaskNotFound,
)
from tasker.records import ResponseRecord, RunRecord, TaskRecord, task_read_view
from tasker.storage.outbox import Outgoing

log = logging.getLogger(__name__)
JSON_TYPE = "application/json; charset=UTF-8"
# Responses a GET renders on the IOLoop (well under a millisecond); more are rendered off it.
RENDER_ON_LOOP = 50
# A refusal: status, message, and headers to send with it.
Refusal = tuple[int, str, dict[str, str]]

# tasker's errors, as the HTTP status each one answers.
ERROR_STATUS = {
    StatementTooLarge: 413,
    RequestTooLarge: 413,
    InvalidTask: 400,
    TaskNotFound: 404,
    EndpointNotFound: 404,
    TaskConflict: 409,
    EndpointAlive: 409,
    StorageUnavailable: 503,
    BrokerUnavailable: 503,
    Overloaded: 503,
}


@tornado.web.stream_request_body
class JsonHandler(tornado.web.RequestHandler):
    """Base of every request handler: JSON answers, JSON errors, tasker errors mapped to statuses,
    and the bearer token when `api.tokens` is configured.

    Every request handler streams its body: a request is refused on its headers (token, path,
    method, size) before a byte of its body is read, and a body no route reads is thrown away.
    """

    requires_token = True

    def initialize(self, dispatcher: Dispatcher | None = None, task_type: str | None = None) -> None:
        self.dispatcher = dispatcher
        self.task_type = task_type

    def prepare(self) -> None:
        refusal = self.refusal()
        if refusal is not None:
            self.refuse(*refusal)

    def refusal(self) -> Refusal | None:
        """Why this request is refused on its headers alone, or None to go on."""
        if self.requires_token and not self.has_valid_token():
            message = "a valid bearer token is required (Authorization: Bearer <token>)"
            return 401, message, {"WWW-Authenticate": 'Bearer realm="tasker"'}
        refusal = self.route_refusal()
        if refusal is not None:
            return refusal
        if self.request.method not in self.allowed_methods():
            message = "method %s is not allowed here" % self.request.method
            return 405, message, {"Allow": ", ".join(self.allowed_methods())}
        length = self.request.headers.get("Content-Length", "").strip()
        limit = self.settings["max_body_size"]
        if length.isdigit() and int(length) > limit:
            return 413, "body of %s bytes is over the limit of %d bytes" % (length, limit), {}
        return None

    def route_refusal(self) -> Refusal | None:
        """What this route refuses beyond token, method and size (a subclass says)."""
        return None

    def refuse(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        """Answer an error now; a body still to come is drained, never read into memory."""
        if not body_pending(self.request):
            # Answered as soon as the request (without a body) is read, in place of the method
            # it asked for: answered from prepare(), the connection would be closed after it.
            answer = functools.partial(self.fail, status, message, headers)
            setattr(self, self.request.method.lower(), lambda *args, **kwargs: answer())
            return
        refuse_unread(
            self.request,
            status,
            error_body(status, message).encode(),
            dict(headers or {}, **{"Content-Type": JSON_TYPE}),
        )
        self.on_connection_close()  # the connection is no longer Tornado's: this request ends here

    def data_received(self, chunk: bytes) -> None:
        """A body on a route that takes none is read and thrown away."""

    def accepted_tokens(self) -> list[str]:
        """The bearer tokens this route takes (none: authentication is off)."""
        return self.settings["tokens"]

    def has_valid_token(self) -> bool:
        """Whether authentication is off or the request carries an accepted bearer token."""
        tokens = self.accepted_tokens()
        if not tokens:
            return True
        scheme, _, given = self.request.headers.get("Authorization", "").partition(" ")
        matched = False
        for token in tokens:  # every token compared in constant time, whichever matches
            matched |= hmac.compare_digest(given.strip().encode(), token.encode())
        return scheme.lower() == "bearer" and matched

    def set_default_headers(self) -> None:
        self.set_header("Content-Type", JSON_TYPE)

    def answer(self, status: int, body: Any) -> None:
        """Finish with `status` and `body` as JSON."""
        self.set_status(status)
        self.finish(jsontext.dumps(body))

    def fail(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        """Finish with an error body: `{"error": {"status": ..., "message": ...}}`."""
        self.clear()
        self.set_status(status)
        for name, value in (headers or {}).items():
            self.set_header(name, value)
        self.finish(error_body(status, message))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, tornado.web.HTTPError) and exc.log_message:
            message = exc.log_message % exc.args if exc.args else exc.log_message
        elif status_code == 405:
            message = "method %s is not allowed here" % self.request.method
        elif status_code >= 500:
            message = "internal error; the API log has the details"
        else:
            message = self._reason
        if status_code == 405:
            self.set_header("Allow", ", ".join(self.allowed_methods()))
        self.finish(error_body(status_code, message))

    def allowed_methods(self) -> list[str]:
        """The methods this handler answers, for the `Allow` header of a 405."""
        return [m for m in ("GET", "POST") if type(self).__dict__.get(m.lower())]

    def _handle_request_exception(self, e: BaseException) -> None:
        for error, status in ERROR_STATUS.items():
            if isinstance(e, error):
                if status >= 500:
                    log.warning("%s %s: %s", self.request.method, self.request.path, e)
                self.fail(status, str(e))
                return
        super()._handle_request_exception(e)


class BodyHandler(JsonHandler):
    """A request handler whose POST takes a JSON body, kept up to `api.max_body_size`."""

    def prepare(self) -> None:
        self._body = bytearray()
        self._too_large = False
        super().prepare()

    def route_refusal(self) -> Refusal | None:
        content_type = self.request.headers.get("Content-Type", "")
        if self.request.method == "POST" and self.needs_json() and not _is_json(content_type):
            return 415, "Content-Type must be application/json, not %r" % content_type, {}
        return None

    def needs_json(self) -> bool:
        """Whether this POST must say its body is JSON (one without a body may not, if allowed)."""
        return True

    def data_received(self, chunk: bytes) -> None:
        if len(self._body) + len(chunk) > self.settings["max_body_size"]:
            self._too_large = True
            self._body = bytearray()
        elif not self._too_large:
            self._body.extend(chunk)

    def body(self) -> bytes:
        """The request's body; a 413 error if it was over the limit."""
        if self._too_large:
            raise RequestTooLarge("body is over the limit of %d bytes" % self.settings["max_body_size"])
        return bytes(self._body)


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


def error_body(status: int, message: str) -> str:
    """Every error's JSON body: `{"error": {"status": ..., "message": ...}}`."""
    return json.dumps({"error": {"status": status, "message": message}})


def _is_json(content_type: str) -> bool:
    return content_type.split(";")[0].strip().lower() == "application/json"


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
