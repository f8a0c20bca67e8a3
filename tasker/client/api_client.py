"""The one place the `tasker` command talks HTTP to the REST API.

Standard library only (`http.client`). Every way a request can go wrong becomes one of the
command's own errors (tasker.client.errors): the API's 4xx answers are `ApiRefused`, with the
message of its JSON error body; a refused connection, a timeout, a cut answer or a 5xx is
`Unreachable`. The token goes in the `Authorization` header and nowhere else.
"""

from __future__ import annotations

import http.client
import json
import logging
import re
import ssl
from typing import Any, Iterator
from urllib.parse import quote, urlencode, urlsplit

from tasker import __version__
from tasker.client.errors import ApiRefused, ClientError, Unreachable, UsageError

log = logging.getLogger(__name__)
TIMEOUT = 30.0  # seconds for connecting and for each read of an answer
CHUNK = 65536
_NO_BODY = object()
_PATH_SAFE = "/%:@!$&'()*+,;=~"  # what a URL's path may hold as it is
_VISIBLE_ASCII = re.compile(r"[\x21-\x7e]+")  # what a bearer token in a header may hold


class ApiClient:
    """A client of one tasker API at `url` (http or https), with an optional bearer token."""

    def __init__(self, url: str, token: str | None = None, timeout: float = TIMEOUT) -> None:
        try:
            url.encode("utf-8")
            parts = urlsplit(url.strip())
            port = parts.port
        except ValueError as exc:  # a bad port or [IPv6] host; UnicodeEncodeError: not UTF-8 text
            reason = "it is not UTF-8 text" if isinstance(exc, UnicodeError) else exc
            raise UsageError("TASKER_URL is not a valid URL: %s" % reason) from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise UsageError("TASKER_URL must be an http:// or https:// URL, not %r" % url)
        self.port = port or (443 if parts.scheme == "https" else 80)
        self.host = parts.hostname
        self.tls = parts.scheme == "https"
        self.base = quote(parts.path.rstrip("/"), safe=_PATH_SAFE)
        shown_host = "[%s]" % self.host if ":" in self.host else self.host
        self.url = "%s://%s:%d%s" % (parts.scheme, shown_host, self.port, self.base)
        self.token = _header_token(token)
        self.timeout = timeout

    # The API's calls, as the command uses them.

    def submit(self, task_type: str, body: dict) -> tuple[int, dict]:
        """POST a new task; the answer's status (201, 200 or 202) and the task."""
        return self.call("POST", _path(task_type), body=body)

    def task(self, task_type: str, identifier: str, wait: int | None = None) -> dict:
        """GET a task and its responses; with `wait`, as soon as it settled or after `wait` s."""
        query = {"wait": wait} if wait else None
        timeout = self.timeout + (wait or 0)
        return self.call("GET", _path(task_type, identifier), query, timeout=timeout)[1]

    def tasks(self, task_type: str, filters: dict[str, Any]) -> dict:
        """One page of the type's history: `{"tasks": [...], "next": ...}`."""
        return self.call("GET", _path(task_type), filters)[1]

    def retry(self, task_type: str, identifier: str, body: dict) -> tuple[int, dict]:
        """Start new runs for the endpoints `body` selects; the status (202 or 200) and the task."""
        return self.call("POST", _path(task_type, identifier, "retry"), body=body)

    def cancel(self, task_type: str, identifier: str) -> tuple[int, dict]:
        """Cancel a task; the status and the task."""
        return self.call("POST", _path(task_type, identifier, "cancel"), body={})

    def endpoints(self, task_type: str | None = None) -> dict:
        """The registered endpoints: `{"endpoints": [...]}`."""
        return self.call("GET", "/endpoints", {"type": task_type})[1]

    def output(
        self, task_type: str, identifier: str, endpoint: str, run: int | None
    ) -> tuple[dict[str, str], Iterator[bytes]]:
        """The headers of a run's output and its bytes, in chunks as they come."""
        query = {"endpoint": endpoint, "run": run}
        response = self.open("GET", _path(task_type, identifier, "output"), query)
        headers = {name.lower(): value for name, value in response.getheaders()}
        return headers, _chunks(response, self.url)

    def events(self, query: dict[str, Any], last_event_id: str | None, timeout: float) -> http.client.HTTPResponse:
        """Open `GET /events`: the response to read the stream from (status 200)."""
        headers = {"Accept": "text/event-stream"}
        if last_event_id:
            headers["Last-Event-ID"] = last_event_id
        return self.open("GET", "/events", query, headers, timeout)

    # The wire.

    def call(
        self, method: str, path: str, query: dict | None = None, body: Any = _NO_BODY, timeout: float | None = None
    ) -> tuple[int, Any]:
        """Send one request and read its whole JSON answer: (status, decoded body)."""
        data, headers = None, {}
        if body is not _NO_BODY:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        response = self.open(method, path, query, headers, timeout, data)
        try:
            raw = response.read()
        except (OSError, http.client.HTTPException) as exc:
            raise Unreachable("the answer of the API at %s was cut off: %s" % (self.url, _reason(exc))) from exc
        finally:
            response.close()
        try:
            return response.status, json.loads(raw)
        except ValueError:
            raise Unreachable("the API at %s answered %s with a body that is not JSON" % (self.url, path)) from None

    def open(
        self,
        method: str,
        path: str,
        query: dict | None = None,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
        data: bytes | None = None,
    ) -> http.client.HTTPResponse:
        """Send a request and read the answer's head; a 2xx answer to read on, else an error."""
        headers = dict(headers or {}, **{"User-Agent": "tasker-cli/%s" % __version__})
        if self.token:
            headers["Authorization"] = "Bearer " + self.token
        target = self.base + path
        if query:
            target += "?" + urlencode({key: value for key, value in query.items() if value is not None}, doseq=True)
        connection = self._connection(timeout or self.timeout)
        log.debug("%s %s%s", method, self.url, target[len(self.base) :])
        try:
            connection.request(method, target, body=data, headers=headers)
            response = connection.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            connection.close()
            raise Unreachable("cannot reach the API at %s: %s" % (self.url, _reason(exc))) from exc
        log.debug("%s %s%s: HTTP %d", method, self.url, target[len(self.base) :], response.status)
        if 200 <= response.status < 300:
            return response
        try:
            raw = response.read()
        except (OSError, http.client.HTTPException):
            raw = b""
        finally:
            connection.close()
        raise self._error(response.status, raw)

    def _connection(self, timeout: float) -> http.client.HTTPConnection:
        if self.tls:
            # The system's CAs (or SSL_CERT_FILE): a certificate that does not verify is refused.
            context = ssl.create_default_context()
            return http.client.HTTPSConnection(self.host, self.port, timeout=timeout, context=context)
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def _error(self, status: int, raw: bytes) -> ClientError:
        message = _error_message(raw)
        if status == 401:
            if self.token:
                return ApiRefused(status, "the API refused the token of TASKER_TOKEN (or --token)")
            return ApiRefused(status, "the API needs a token: set TASKER_TOKEN (or --token)")
        if 400 <= status < 500:
            return ApiRefused(status, message or "the API refused the request")
        return Unreachable("the API at %s could not answer: %s (HTTP %d)" % (self.url, message or "no reason", status))


def _header_token(token: str | None) -> str | None:
    """The token as it goes into the header, or a `UsageError` that never shows it: error
    lines end up in logs."""
    if token and not _VISIBLE_ASCII.fullmatch(token):
        raise UsageError(
            "TASKER_TOKEN (or --token) holds a character an HTTP header cannot carry"
            " (a space, a line end, or one that is not ASCII)"
        )
    return token or None


def _path(*segments: str) -> str:
    return "".join("/" + quote(segment, safe="") for segment in segments)


def _error_message(raw: bytes) -> str:
    """The message of the API's JSON error body, else the start of whatever it sent."""
    try:
        return str(json.loads(raw)["error"]["message"])
    except (ValueError, KeyError, TypeError):
        text = raw.decode("utf-8", "replace").strip().splitlines()
        return text[0][:200] if text else ""


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    if isinstance(exc, http.client.IncompleteRead):
        return "the answer ended early"
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0]


def _chunks(response: http.client.HTTPResponse, url: str) -> Iterator[bytes]:
    try:
        while chunk := response.read1(CHUNK):
            yield chunk
        if response.length:  # a Content-Length answer that ended before its length
            raise http.client.IncompleteRead(b"", response.length)
    except (OSError, http.client.HTTPException) as exc:
        raise Unreachable("the output from %s was cut off: %s" % (url, _reason(exc))) from exc
    finally:
        response.close()
