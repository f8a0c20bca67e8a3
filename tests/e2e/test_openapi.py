"""The OpenAPI description at /openapi.json: a valid document, true to real answers, and a fuzz target."""

from __future__ import annotations

import json
import math
import socket
import time
from typing import Any

import jsonschema
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from openapi_spec_validator import validate as validate_openapi
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import delete
from sqlalchemy.engine import make_url

from tasker.api.openapi import openapi_document
from tasker.storage.models import EndpointRegistration
from tests.helpers import Answer, TcpProxy, unique

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
PORT, SECURED_PORT, NEWLINE_PORT, OUTAGE_PORT = 18960, 18961, 18962, 18963
CONSOLES = ["console1", "console2"]
FUZZ_REQUESTS = 1200  # spread over every operation and generation mode; at least 1,000 must be sent
FUZZ_TIMEOUT = 5  # seconds; the API answers in milliseconds, a slow answer is a finding too
FUZZ_MAX_FAILURES = 10  # then stop sending: the findings are clear, the rest would only be slow
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]


@pytest.fixture(scope="module")
def api(cluster, database):
    with database.transaction() as session:  # earlier tests may have registered other endpoints
        session.execute(delete(EndpointRegistration).where(EndpointRegistration.endpoint.notin_(CONSOLES)))
    for endpoint in CONSOLES:  # handlers that answer at once, so the fuzz's tasks drain quickly
        cluster.manager(endpoint, "worker", env={"TASKER_TEST_HANDLER_WAIT": "0"})
    return cluster.api(PORT)[1]


@pytest.fixture(scope="module")
def document(api) -> dict[str, Any]:
    answer = api.request("GET", "/openapi.json")
    assert answer.status == 200 and answer.headers["content-type"].startswith("application/json"), answer
    return answer.json


def conforms(document: dict, answer: Answer, method: str, template: str | None) -> None:
    """Assert that `answer` is one the document gives for `method template` (None: any path)."""
    if template is None:  # an error of no operation: an unknown path, an unserved method
        name = {404: "NotFound", 405: "MethodNotAllowed"}[answer.status]
        response = document["components"]["responses"][name]
    else:
        responses = document["paths"][template][method.lower()]["responses"]
        assert str(answer.status) in responses, "%s %s: %d is not documented" % (method, template, answer.status)
        response = resolve(document, responses[str(answer.status)])
    assert answer.headers["content-type"].startswith("application/json"), answer
    schema = response["content"]["application/json"]["schema"]
    jsonschema.Draft202012Validator(dict(schema, components=document["components"])).validate(answer.json)
    for header in response.get("headers", {}):
        assert header.lower() in answer.headers, "%s %s: no %s header in %r" % (method, template, header, answer)


def resolve(document: dict, item: dict) -> dict:
    """Follow the local `$ref`s of the document from `item`."""
    while "$ref" in item:
        node = document
        for part in item["$ref"].removeprefix("#/").split("/"):
            node = node[part]
        item = node
    return item


def test_openapi_json_is_a_valid_document_of_every_configured_task_type(api, document, test_config):
    validate_openapi(document)
    assert document == json.loads(json.dumps(openapi_document(test_config)))
    expected = {"/health", "/openapi.json", "/metrics"}
    for task_type in test_config.task_types:
        expected |= {"/%s" % task_type, "/%s/{identifier}" % task_type}
        expected |= {"/%s/{identifier}/retry" % task_type, "/%s/{identifier}/cancel" % task_type}
        expected.add("/%s/{identifier}/output" % task_type)
    expected.add("/events")
    expected |= {"/endpoints", "/endpoints/{type}/{endpoint}"}
    assert set(document["paths"]) == expected
    assert "securitySchemes" not in document["components"], "no api.tokens in this run: no authentication"
    loaded = schemathesis.openapi.from_dict(document)
    history = len(test_config.task_types)  # /<type> has two operations: POST creates, GET lists
    assert len([result.ok() for result in loaded.get_all_operations()]) == len(expected) + history


def test_a_created_task_its_retry_and_a_conflict_answer_as_documented(api, document):
    body = {"identifier": unique("doc"), "payload": {"a": [1, None, "x"]}, "endpoints": CONSOLES}
    created, retried = api.post("worker", body), api.post("worker", body)
    conflict = api.post("worker", dict(body, payload={"a": 2}))
    assert (created.status, retried.status, conflict.status) == (201, 200, 409)
    for answer in (created, retried, conflict):
        conforms(document, answer, "POST", "/worker")
    assert created.headers["location"] == "/worker/" + body["identifier"]


def test_a_done_task_and_its_responses_read_as_documented(api, document):
    identifier = unique("done")
    assert api.post("worker", {"identifier": identifier, "payload": [1, 2]}).status == 201
    api.wait_status("worker", identifier, ("DONE",))
    answer = api.get("worker", identifier)
    conforms(document, answer, "GET", "/worker/{identifier}")
    assert sorted(response["endpoint"] for response in answer.json["taskResponseList"]) == CONSOLES


def test_a_page_of_the_history_and_a_bad_filter_answer_as_documented(api, document):
    prefix = unique("page")
    for number in range(3):
        assert api.post("worker", {"identifier": "%s-%d" % (prefix, number), "endpoints": CONSOLES}).status == 201
    first = api.request("GET", "/worker?limit=2&identifier=" + prefix)
    assert first.status == 200 and len(first.json["tasks"]) == 2, first
    conforms(document, first, "GET", "/worker")
    last = api.request("GET", "/worker?limit=2&cursor=" + first.json["next"])
    assert last.status == 200, last
    conforms(document, last, "GET", "/worker")
    for query in ("limit=0", "status=done", "cursor=forged", "since=yesterday"):
        refused = api.request("GET", "/worker?" + query)
        assert refused.status == 400, refused
        conforms(document, refused, "GET", "/worker")


def test_metrics_answer_in_the_documented_text_format(api, document):
    answer = api.request("GET", "/metrics")
    assert answer.status == 200, answer
    (media_type,) = document["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert media_type == "text/plain; version=0.0.4" and answer.headers["content-type"].startswith(media_type)
    assert b"# TYPE tasker_fleet_up gauge" in answer.raw


def test_the_endpoints_and_a_refused_deregistration_answer_as_documented(api, document):
    listed = api.request("GET", "/endpoints?type=worker")
    assert listed.status == 200 and [e["endpoint"] for e in listed.json["endpoints"]] == CONSOLES, listed
    conforms(document, listed, "GET", "/endpoints")
    assert all(entry["alive"] for entry in listed.json["endpoints"]), listed
    alive = api.request("DELETE", "/endpoints/worker/console1")
    assert alive.status == 409, alive
    conforms(document, alive, "DELETE", "/endpoints/{type}/{endpoint}")


def test_a_runs_output_and_its_errors_answer_as_documented(api, document):
    identifier, template = unique("output"), "/worker/{identifier}/output"
    assert api.post("worker", {"identifier": identifier, "endpoints": CONSOLES}).status == 201
    api.wait_status("worker", identifier, ("DONE",))
    answer = api.request("GET", "/worker/%s/output?endpoint=console1" % identifier)
    documented = document["paths"][template]["get"]["responses"]["200"]
    assert answer.status == 200 and answer.headers["content-type"].split(";")[0] in documented["content"], answer
    for name, header in documented["headers"].items():
        assert not header.get("required") or name.lower() in answer.headers, name
    for query, status in (("", 400), ("endpoint=console1&run=0", 400), ("endpoint=console9", 404)):
        error = api.request("GET", "/worker/%s/output?%s" % (identifier, query))
        assert error.status == status, error
        conforms(document, error, "GET", template)


ERRORS = [
    ("malformed JSON", "POST", "/worker", b"{nope", "application/json", 400, "/worker"),
    ("NaN", "POST", "/worker", b'{"identifier": "x", "payload": NaN}', "application/json", 400, "/worker"),
    ("not an object", "POST", "/worker", b"[1]", "application/json", 400, "/worker"),
    ("unknown key", "POST", "/worker", b'{"identifier": "x", "id": 1}', "application/json", 400, "/worker"),
    ("bad identifier", "POST", "/worker", b'{"identifier": "a b"}', "application/json", 400, "/worker"),
    ("no endpoints", "POST", "/worker", b'{"identifier": "x", "endpoints": []}', "application/json", 400, "/worker"),
    ("twice", "POST", "/worker", b'{"identifier": "x", "endpoints": ["c", "c"]}', "application/json", 400, "/worker"),
    ("not UTF-8 in the path", "GET", "/worker/%FF", None, None, 400, "/worker/{identifier}"),
    ("unknown identifier", "GET", "/worker/no-such-task", None, None, 404, "/worker/{identifier}"),
    ("invalid identifier", "GET", "/worker/a%20b", None, None, 404, "/worker/{identifier}"),
    ("unknown type", "POST", "/nosuchtype", b'{"identifier": "x"}', "application/json", 404, None),
    ("unknown path", "GET", "/worker/x/y", None, None, 404, None),
    ("DELETE a task", "DELETE", "/worker/x", None, None, 405, None),
    ("PUT the collection", "PUT", "/worker", b"{}", "application/json", 405, None),
    ("POST the health", "POST", "/health", b"{}", "application/json", 405, None),
    ("PUT the document", "PUT", "/openapi.json", b"{}", "application/json", 405, None),
    ("unknown type filter", "GET", "/endpoints?type=nope", None, None, 404, "/endpoints"),
    ("unknown endpoint", "DELETE", "/endpoints/worker/nobody", None, None, 404, "/endpoints/{type}/{endpoint}"),
    ("unknown endpoint type", "DELETE", "/endpoints/nope/console1", None, None, 404, "/endpoints/{type}/{endpoint}"),
    ("GET an endpoint", "GET", "/endpoints/worker/console1", None, None, 405, None),
    ("POST the endpoints", "POST", "/endpoints", b"{}", "application/json", 405, None),
    ("form data", "POST", "/worker", b"identifier=x", "application/x-www-form-urlencoded", 415, "/worker"),
    ("no content type", "POST", "/worker", b'{"identifier": "x"}', None, 415, "/worker"),
]


@pytest.mark.parametrize("case", ERRORS, ids=[case[0] for case in ERRORS])
def test_each_error_answers_its_documented_status_and_body(api, document, case):
    _, method, path, raw, content_type, status, template = case
    answer = api.request(method, path, raw=raw, headers={"Content-Type": content_type} if content_type else {})
    assert answer.status == status, answer
    conforms(document, answer, method, template)
    assert answer.json["error"]["status"] == status


def test_too_many_endpoints_is_a_documented_400(api, document, test_config):
    endpoints = ["e%d" % number for number in range(test_config.api.max_endpoints + 1)]
    answer = api.post("worker", {"identifier": unique("many"), "endpoints": endpoints})
    assert answer.status == 400, answer
    conforms(document, answer, "POST", "/worker")


def test_a_body_over_the_limit_is_a_documented_413(api, document, test_config):
    limit = test_config.api.max_body_size
    with socket.create_connection(("127.0.0.1", PORT), timeout=10) as connection:
        connection.sendall(
            b"POST /worker HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\nExpect: 100-continue\r\n\r\n" % (limit + 1)
        )
        raw = b""
        while b"}}" not in raw and (chunk := connection.recv(65536)):
            raw += chunk
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    headers = dict(line.decode().lower().split(": ", 1) for line in head.split(b"\r\n")[1:])
    conforms(document, Answer(status, headers, body), "POST", "/worker")
    assert status == 413


def test_with_tokens_the_document_is_open_and_declares_the_bearer_scheme(fresh_cluster):
    api = fresh_cluster.api(SECURED_PORT, env={"TASKER_TEST_API_TOKENS": "s3cret", "TASKER_TEST_API_AUTH": "tokens"})[1]
    answer = api.request("GET", "/openapi.json")
    assert answer.status == 200, answer
    document = answer.json
    validate_openapi(document)
    assert document["components"]["securitySchemes"] == {"bearer": {"type": "http", "scheme": "bearer"}}
    body = {"identifier": unique("token"), "endpoints": ["console1"]}
    refused = api.post("worker", body)
    assert refused.status == 401, refused
    conforms(document, refused, "POST", "/worker")
    created = api.post("worker", body, headers={"Authorization": "Bearer s3cret"})
    assert created.status == 201, created
    conforms(document, created, "POST", "/worker")
    scrape = api.request("GET", "/metrics")
    assert scrape.status == 401, scrape
    conforms(document, scrape, "GET", "/metrics")


def test_a_task_accepted_without_the_broker_and_an_unreachable_database_answer_as_documented(
    fresh_cluster, document, test_config
):
    broker, storage = TcpProxy(test_config.manager.message_queue.port), TcpProxy(3306)
    storage.start()
    uri = make_url(test_config.manager.db.uri).set(port=storage.port).render_as_string(hide_password=False)
    env = {"TASKER_TEST_RABBITMQ_PORT": str(broker.port), "TASKER_TEST_DB_URI": uri}
    try:
        api = fresh_cluster.api(OUTAGE_PORT, env=env)[1]
        accepted = api.post("worker", {"identifier": unique("outbox"), "endpoints": ["console1"]})
        assert accepted.status == 202, accepted
        conforms(document, accepted, "POST", "/worker")
        storage.stop()
        for answer, method, template in (
            (api.post("worker", {"identifier": unique("down")}), "POST", "/worker"),
            (api.get("worker", "any"), "GET", "/worker/{identifier}"),
            (api.request("GET", "/health"), "GET", "/health"),
        ):
            assert answer.status == 503, answer
            conforms(document, answer, method, template)
    finally:
        broker.stop()
        storage.stop()


def test_names_with_a_trailing_newline_are_refused_and_leave_the_publisher_working(fresh_cluster):
    """The document's patterns end at `$`, which in JSON Schema is the end of the string, newline or not."""
    api = fresh_cluster.api(NEWLINE_PORT)[1]
    for body in ({"identifier": "newline\n"}, {"identifier": unique("nl"), "endpoints": ["console1\n"]}):
        started = time.monotonic()
        answer = api.post("worker", body)
        assert answer.status == 400 and time.monotonic() - started < FUZZ_TIMEOUT, (body, answer)
    started = time.monotonic()
    answer = api.post("worker", {"identifier": unique("after-nl"), "endpoints": [unique("fresh")]})
    assert answer.status == 201 and time.monotonic() - started < FUZZ_TIMEOUT, answer


class Fuzz:
    """Sends schemathesis' cases for the operations of a document; counts them, keeps what went wrong."""

    def __init__(self, document: dict, base_url: str) -> None:
        self.document = document
        self.base_url = base_url
        self.schema = schemathesis.openapi.from_dict(document)
        self.session = requests.Session()
        self.error = dict(document["components"]["schemas"]["Error"], components=document["components"])
        self.sent: dict[str, int] = {}
        self.failures: list[str] = []

    def run(self, total: int) -> None:
        """Send about `total` cases, spread evenly over the operations with inputs and both generation modes."""
        fixed, varied = [], []
        for operation in (result.ok() for result in self.schema.get_all_operations()):
            if operation.path == "/events":  # a stream that never ends by itself: tests/e2e/test_events.py
                continue
            if operation.path_parameters or operation.body or self._filtered(operation):
                varied += [(operation, GenerationMode.POSITIVE), (operation, GenerationMode.NEGATIVE)]
            else:  # nothing to vary: one request says it all
                fixed.append((operation, GenerationMode.POSITIVE))
        for operation, mode in fixed + varied:
            self._exercise(operation, mode, math.ceil(total / len(varied)))

    def _filtered(self, operation: Any) -> bool:
        """Whether the operation takes query parameters and answers JSON (a stream never ends: it is sent once)."""
        ok = self.document["paths"][operation.path][operation.method.lower()]["responses"].get("200", {})
        return bool(operation.query) and "application/json" in ok.get("content", {})

    def _exercise(self, operation: Any, mode: GenerationMode, examples: int) -> None:
        # Derandomized, not shrunk and not replayed from a database: every run sends the same cases.
        @settings(
            max_examples=examples,
            derandomize=True,
            database=None,
            deadline=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(operation.as_strategy(generation_mode=mode))
        def send(case: Any) -> None:
            if len(self.failures) < FUZZ_MAX_FAILURES:
                self._send(case, "%s %s" % (operation.label, mode.value))

        send()

    def _send(self, case: Any, label: str) -> None:
        _shorten_wait(case)
        curl = case.as_curl_command(base_url=self.base_url)
        try:
            response = case.call(base_url=self.base_url, session=self.session, timeout=FUZZ_TIMEOUT)
        except requests.RequestException as exc:
            self.failures.append("%s: no answer (%s)\n  %s" % (label, exc, curl))
            return
        self.sent[label] = self.sent.get(label, 0) + 1
        try:
            case.validate_response(response, checks=CHECKS)
            assert "Traceback" not in response.text, "a traceback in the answer"
            if response.status_code >= 400:
                jsonschema.Draft202012Validator(self.error).validate(response.json())
        except Exception as exc:  # every check's failure, and an answer that is not JSON at all
            answer = "%d %s" % (response.status_code, response.text[:300])
            self.failures.append("%s: %s\n  %s\n  -> %s" % (label, str(exc)[:600], curl, answer))


def _shorten_wait(case: Any) -> None:
    """A valid `wait` goes as 1 second, as `make fuzz` sends it (scripts/fuzz_hooks.py): no
    manager runs the fuzz's tasks, so a task it created would hold the request for S seconds."""
    query = case.query if isinstance(case.query, dict) else {}
    value = query.get("wait")
    if isinstance(value, str) and value.isdigit() and len(value) <= 2 and 1 <= int(value) <= 60:
        query["wait"] = "1"
    elif isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 60:
        query["wait"] = 1


def test_fuzzing_from_the_document_finds_no_server_error_and_leaves_the_api_healthy(api, document):
    fuzz = Fuzz(document, "http://127.0.0.1:%d" % PORT)
    fuzz.run(FUZZ_REQUESTS)
    assert not fuzz.failures, "%d findings:\n%s" % (len(fuzz.failures), "\n".join(fuzz.failures))
    assert sum(fuzz.sent.values()) >= 1000, fuzz.sent

    assert api.request("GET", "/health").status == 200
    served = unique("after-fuzz")
    for identifier, endpoints in ((served, CONSOLES), (unique("after-fuzz"), [unique("fresh")])):
        started = time.monotonic()  # a fresh endpoint: its queue is declared now, by the same publisher
        answer = api.post("worker", {"identifier": identifier, "endpoints": endpoints})
        assert answer.status in (201, 202) and time.monotonic() - started < FUZZ_TIMEOUT, answer
    api.wait_status("worker", served, ("DONE",))
