"""Refusing a request before its body is read, so that every client reads the answer.

A request refused by its headers alone (no token, unknown path, wrong method, too large) is
answered at once, and its body is never buffered. Closing the connection with the body still
arriving would make the kernel send a reset, and many clients (Python's urllib among them)
then report `ECONNRESET` instead of the answer. So the answer is written, the connection
leaves Tornado's hands, and the body is read and thrown away up to a bound before the close.
"""

from __future__ import annotations

import asyncio
import http
import logging

from tornado.httputil import HTTPServerRequest
from tornado.iostream import IOStream, StreamClosedError

log = logging.getLogger(__name__)

# What a refused client may still send before the connection is closed regardless.
DRAIN_BYTES = 64 * 1024 * 1024
DRAIN_SECONDS = 10.0
# A client that stops sending (one waiting for `100 Continue`, say) is not waited for longer.
IDLE_SECONDS = 2.0
_READ_SIZE = 64 * 1024


def body_pending(request: HTTPServerRequest) -> bool:
    """Whether the request announces a body that has not been read yet."""
    length = request.headers.get("Content-Length")
    if length is not None:
        return length.strip() != "0"
    return "chunked" in request.headers.get("Transfer-Encoding", "").lower()


def refuse_unread(request: HTTPServerRequest, status: int, body: bytes, headers: dict[str, str]) -> None:
    """Answer `status` with `body` now, then drain and close the connection in the background.

    Call it from a request handler's `prepare()` of a `stream_request_body` handler: the
    connection is detached from Tornado, which reads nothing more of this request.
    """
    stream = request.connection.detach()
    expected = _announced_length(request)
    asyncio.ensure_future(_answer_and_drain(stream, _response(status, body, headers), expected))
    log.info("%s %s refused with %d before its body was read", request.method, request.path, status)


def _announced_length(request: HTTPServerRequest) -> int:
    length = request.headers.get("Content-Length", "").strip()
    return min(int(length), DRAIN_BYTES) if length.isdigit() else DRAIN_BYTES


def _response(status: int, body: bytes, headers: dict[str, str]) -> bytes:
    try:
        reason = http.HTTPStatus(status).phrase
    except ValueError:
        reason = "Error"
    lines = ["HTTP/1.1 %d %s" % (status, reason)]
    lines += ["%s: %s" % item for item in headers.items()]
    lines += ["Content-Length: %d" % len(body), "Connection: close", "", ""]
    return "\r\n".join(lines).encode("latin-1") + body


async def _answer_and_drain(stream: IOStream, response: bytes, expected: int) -> None:
    loop = asyncio.get_running_loop()
    give_up = loop.time() + DRAIN_SECONDS
    try:
        await stream.write(response)
        remaining = expected
        while remaining > 0:
            wait = min(IDLE_SECONDS, give_up - loop.time())
            if wait <= 0:
                break
            chunk = await asyncio.wait_for(stream.read_bytes(min(remaining, _READ_SIZE), partial=True), wait)
            remaining -= len(chunk)
    except (StreamClosedError, asyncio.TimeoutError, OSError):
        pass
    finally:
        stream.close()
