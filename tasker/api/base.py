"""The base of tasker's request handlers: authentication and refusals before a body is read,
streamed bodies, and every error as a JSON body."""

from __future__ import annotations

import functools
import hmac
import json
import logging
from typing import Any

import tornado.web

from tasker import jsontext
from tasker.api.dispatch import Dispatcher
from tasker.api.refusal import body_pending, refuse_unread
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

log = logging.getLogger(__name__)
JSON_TYPE = "application/json; charset=UTF-8"
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
            dict(headers or {}, **self.default_headers()),
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
        for name, value in self.default_headers().items():
            self.set_header(name, value)

    def default_headers(self) -> dict[str, str]:
        """The headers of every answer, a refusal written before Tornado's headers included."""
        return {"Content-Type": JSON_TYPE}

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
        if self.request.method == "POST" and not _is_json(content_type):
            return 415, "Content-Type must be application/json, not %r" % content_type, {}
        return None

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


def error_body(status: int, message: str) -> str:
    """Every error's JSON body: `{"error": {"status": ..., "message": ...}}`."""
    return json.dumps({"error": {"status": status, "message": message}})


def _is_json(content_type: str) -> bool:
    return content_type.split(";")[0].strip().lower() == "application/json"
