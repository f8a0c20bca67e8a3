"""The dashboard over plain HTTP: its page and files load without a token with their security
headers and nothing else is served under /ui; retry and cancel take JSON only and refuse
another web page's Origin, so a page on another site cannot operate tasks."""

from __future__ import annotations

import json
import re
import socket

import pytest

from tasker.api.ui import CONTENT_SECURITY_POLICY, SECURITY_HEADERS
from tasker.dashboard import static_dir
from tests.helpers import Api, unique

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
PORT = 19171
TOKEN = "ui-security-token-0123456789"
OWN_ORIGIN = "http://127.0.0.1:%d" % PORT
JSON = {"Content-Type": "application/json"}
FILES = {
    "/ui": "text/html; charset=utf-8",
    "/ui/static/app.js": "text/javascript; charset=utf-8",
    "/ui/static/task.js": "text/javascript; charset=utf-8",
    "/ui/static/style.css": "text/css; charset=utf-8",
    "/ui/static/favicon.svg": "image/svg+xml",
}


@pytest.fixture(scope="module")
def api(cluster):
    """An API that wants a token (no manager: what is tested here is refused or never runs)."""
    env = {"TASKER_TEST_API_AUTH": "tokens", "TASKER_TEST_API_TOKENS": TOKEN}
    return cluster.api(PORT, env=env, token=TOKEN)[1]


@pytest.fixture(scope="module")
def anonymous(api):
    """A client of the same API without a token."""
    return Api(PORT)


@pytest.mark.parametrize("path", list(FILES))
def test_the_page_and_its_files_load_without_a_token_with_security_headers(anonymous, path):
    answer = anonymous.request("GET", path)
    assert answer.status == 200, answer
    assert answer.headers["content-type"] == FILES[path]
    assert answer.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert "'unsafe-inline'" not in CONTENT_SECURITY_POLICY and "frame-ancestors 'none'" in CONTENT_SECURITY_POLICY
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["referrer-policy"] == "no-referrer"
    assert answer.headers["cache-control"] == "no-cache"
    etag = answer.headers["etag"]
    again = anonymous.request("GET", path, headers={"If-None-Match": etag})
    assert (again.status, again.raw) == (304, b""), "an unchanged file is not sent again"
    head = anonymous.request("HEAD", path)
    assert (head.status, head.raw, head.headers["etag"]) == (200, b"", etag)


def test_the_rest_of_the_api_still_wants_the_token(anonymous):
    answer = anonymous.request("GET", "/worker")
    assert answer.status == 401 and answer.json["error"]["status"] == 401, answer


def test_the_page_names_the_task_types_and_has_no_inline_script_or_style(anonymous, test_config):
    page = anonymous.request("GET", "/ui").raw.decode()
    assert '<meta name="tasker-task-types" content="%s">' % " ".join(test_config.task_types) in page
    scripts = re.findall(r"<script\b[^>]*>(.*?)</script>", page, re.S)
    assert scripts == [""], "one script, loaded from its file"
    assert re.search(r"<script\b[^>]*\bsrc=", page) and not re.search(r"<style\b|\sstyle=|\son[a-z]+=", page)


def test_the_scripts_never_parse_data_as_html():
    for path in static_dir().glob("*.js"):
        text = path.read_text()
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
            assert sink not in text, "%s uses %s" % (path.name, sink)


@pytest.mark.parametrize(
    "path",
    [
        "/ui/static/../../setup.py",
        "/ui/static/..%2F..%2Fsetup.py",
        "/ui/static/%2e%2e%2f__init__.py",
        "/ui/static/..%5c..%5csetup.py",
        "/ui/static/__init__.py",
        "/ui/static/index.html",  # the page is /ui only
        "/ui/static/",
        "/ui/static/app.js/x",
        "/ui/nothing",
        "/ui/../openapi.json/x",
    ],
)
def test_nothing_but_the_dashboards_files_is_served_under_ui(anonymous, path):
    answer = anonymous.request("GET", path)
    assert answer.status == 404, answer
    assert answer.json["error"]["status"] == 404
    assert answer.headers["content-security-policy"] == CONTENT_SECURITY_POLICY


def raw_exchange(request: bytes) -> tuple[int, dict[str, str], dict]:
    """Send `request` as it is (a body announced may not follow) and read the answer: status,
    headers (names in lower case) and JSON body."""
    with socket.create_connection(("127.0.0.1", PORT), timeout=10) as connection:
        connection.sendall(request)
        answer = b""
        while not _complete(answer):
            chunk = connection.recv(65536)
            if not chunk:
                break
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    return int(status_line.split()[1]), headers, json.loads(body)


def _complete(answer: bytes) -> bool:
    head, found, body = answer.partition(b"\r\n\r\n")
    length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    return bool(found and length and len(body) >= int(length.group(1)))


@pytest.mark.parametrize(
    "request_head, body, status",
    [
        (b"POST /ui", b"x" * 10, 405),
        (b"POST /ui/static/app.js", b"x" * 10, 405),
        (b"GET /ui/nothing", b"x" * 10, 404),
        (b"GET /ui", b"", 413),  # announces 2 MB, sends none of it
    ],
    ids=["405-page", "405-file", "404", "413"],
)
@pytest.mark.usefixtures("api")
def test_every_answer_under_ui_carries_the_security_headers_refusals_with_a_body_included(request_head, body, status):
    length = len(body) if body else 2_000_000
    request = request_head + b" HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (length, body)
    answered, headers, error = raw_exchange(request)
    assert (answered, error["error"]["status"]) == (status, status), (answered, headers, error)
    for name, value in SECURITY_HEADERS.items():
        assert headers.get(name.lower()) == value, (name, headers)
    assert headers["content-type"].startswith("application/json")
    if status == 405:
        assert headers["allow"] == "GET, HEAD"


def test_ui_with_a_slash_is_sent_to_the_page(anonymous):
    answer = anonymous.request("GET", "/ui/")
    assert (answer.status, answer.headers["location"]) == (301, "../ui")


@pytest.mark.parametrize("action", ["retry", "cancel"])
@pytest.mark.parametrize("content_type", [None, "application/x-www-form-urlencoded", "text/plain"])
def test_retry_and_cancel_take_json_only_even_without_a_body(api, action, content_type):
    headers = {"Content-Type": content_type} if content_type else {}
    for raw in (None, b"", b"endpoints=failed"):
        answer = api.request("POST", "/worker/%s/%s" % (unique("nobody"), action), raw=raw, headers=headers)
        assert answer.status == 415, (raw, answer)
        assert "application/json" in answer.json["error"]["message"]


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://evil.example"},
        {"Origin": "null"},
        {"Origin": "http://127.0.0.1:1"},  # another port
        {"Origin": "https://127.0.0.1:%d" % PORT},  # another scheme
        {"Origin": "http://127.0.0.1.evil.example:%d" % PORT},
        {"Origin": OWN_ORIGIN + "/ui"},  # not an origin
        {"Origin": OWN_ORIGIN, "Sec-Fetch-Site": "cross-site"},
    ],
    ids=["other-host", "null", "other-port", "other-scheme", "suffix", "with-path", "cross-site"],
)
@pytest.mark.parametrize("action", ["retry", "cancel"])
def test_retry_and_cancel_from_another_web_page_are_refused(api, action, headers):
    answer = api.request("POST", "/worker/%s/%s" % (unique("nobody"), action), raw=b"{}", headers=dict(JSON, **headers))
    assert answer.status == 403, answer
    assert answer.headers["content-type"].startswith("application/json")
    message = answer.json["error"]["message"]
    assert answer.json["error"]["status"] == 403 and "refused" in message
    assert ("Sec-Fetch-Site" in message) if "Sec-Fetch-Site" in headers else ("Origin" in message)


@pytest.mark.parametrize(
    "headers",
    [
        {},  # curl, scripts, the tasker command: no Origin
        {"Origin": OWN_ORIGIN, "Sec-Fetch-Site": "same-origin"},
        {"Origin": "HTTP://127.0.0.1:%d" % PORT},
        {"Host": "localhost:%d" % PORT, "Origin": "http://localhost:%d" % PORT},
        {"Host": "tasker.example", "Origin": "http://tasker.example:80"},  # the default port either way
    ],
    ids=["no-origin", "own", "upper-case", "by-name", "default-port"],
)
def test_retry_and_cancel_from_the_apis_own_origin_or_without_one_go_on(api, headers):
    for action in ("retry", "cancel"):
        answer = api.request("POST", "/worker/%s/%s" % (unique("nobody"), action), headers=dict(JSON, **headers))
        assert answer.status == 404, answer  # past the checks: the task does not exist


def test_a_cancel_takes_no_body_or_an_empty_object(api):
    identifier = unique("cancel")
    created = api.post("worker", {"identifier": identifier, "endpoints": ["ui-nobody"]})  # no manager: queued
    assert created.status == 201, created
    path = "/worker/%s/cancel" % identifier
    refused = api.request("POST", path, raw=b'{"now": true}', headers=JSON)
    assert refused.status == 400 and "empty JSON object" in refused.json["error"]["message"], refused
    assert api.request("POST", path, raw=b"{}", headers=JSON).status == 202
    again = api.request("POST", path, headers=dict(JSON, Origin=OWN_ORIGIN))
    assert again.status == 202 and again.json["status"] == "CANCELLED", again
