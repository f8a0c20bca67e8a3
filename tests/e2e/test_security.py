"""Exposing the API: bearer tokens, TLS for the API and for AMQP, input limits."""

from __future__ import annotations

import http.client
import itertools
import json
import socket
import ssl
import subprocess
import urllib.error
import urllib.request

import pytest

from tests.helpers import BIN, ROOT, Api, TcpProxy, consumers, process_env, unique, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
TOKENS = "first-token-0123456789, second-token-abcdef"


@pytest.fixture(scope="module")
def certificates(tmp_path_factory):
    """A throw-away CA and a certificate for localhost signed by it."""
    folder = tmp_path_factory.mktemp("tls")

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True, timeout=60)

    openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=tasker test CA",
    )
    openssl(
        "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost"
    )
    (folder / "ext.cnf").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    openssl(
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    )
    return {name: str(folder / name) for name in ("ca.pem", "server.pem", "server.key")}


def test_with_tokens_configured_every_task_route_needs_one(fresh_cluster):
    fresh_cluster.manager("auth-1")
    _, api = fresh_cluster.api(
        18910, env={"TASKER_TEST_API_TOKENS": TOKENS, "TASKER_TEST_API_AUTH": "tokens"}, token="second-token-abcdef"
    )
    identifier = unique("auth")
    assert api.post("worker", {"identifier": identifier, "endpoints": ["auth-1"]}).status == 201
    api.wait_status("worker", identifier, ("DONE",))

    for headers in (
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": "Basic first-token-0123456789"},
        {"Authorization": "Bearer first-token-012345678"},
    ):
        anonymous = Api(api.port, token=None)
        for answer in (
            anonymous.request("GET", "/worker/" + identifier, headers=headers),
            anonymous.request("POST", "/worker", {"identifier": unique(), "endpoints": ["x"]}, headers),
            anonymous.request("GET", "/nowhere", headers=headers),
        ):
            assert answer.status == 401, (headers, answer)
            assert answer.json["error"]["status"] == 401
            assert answer.headers["www-authenticate"] == 'Bearer realm="tasker"'
    health = Api(api.port).request("GET", "/health")
    assert health.status == 200 and health.json == {"status": "ok"}, "open, without details"
    assert set(api.request("GET", "/health").json) == {
        "status",
        "database",
        "broker",
        "loop_lag_ms",
        "waiters",
        "event_streams",
    }


def test_the_api_serves_tls_with_the_configured_certificate(fresh_cluster, certificates):
    fresh_cluster.manager("tls-api-1")
    env = {
        "TASKER_TEST_API_TLS": "true",
        "TASKER_TEST_API_CERT": certificates["server.pem"],
        "TASKER_TEST_API_KEY": certificates["server.key"],
    }
    _, api = fresh_cluster.api(18911, env=env, ca_file=certificates["ca.pem"])
    identifier = unique("https")
    assert api.post("worker", {"identifier": identifier, "endpoints": ["tls-api-1"]}).status == 201
    api.wait_status("worker", identifier, ("DONE",))
    with pytest.raises((ConnectionError, OSError)):
        Api(18911).request("GET", "/health")  # plain HTTP is not served


def test_api_and_managers_reach_rabbitmq_over_tls(fresh_cluster, certificates):
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certificates["server.pem"], certificates["server.key"])
    broker = TcpProxy(5672, tls=context)
    broker.start()
    try:
        env = {
            "TASKER_TEST_AMQP_TLS": "true",
            "TASKER_TEST_CA_FILE": certificates["ca.pem"],
            "TASKER_TEST_RABBITMQ_PORT": str(broker.port),
        }
        fresh_cluster.manager("amqps-1", env=env)
        _, api = fresh_cluster.api(18912, env=env)
        identifier = unique("amqps")
        assert api.post("worker", {"identifier": identifier, "endpoints": ["amqps-1"]}).status == 201
        api.wait_status("worker", identifier, ("DONE",))  # the TLS proxy is the only broker they know
    finally:
        broker.stop()


def test_a_manager_refuses_a_broker_whose_certificate_it_cannot_verify(fresh_cluster, certificates, tmp_path):
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certificates["server.pem"], certificates["server.key"])
    broker = TcpProxy(5672, tls=context)
    broker.start()
    try:
        env = {"TASKER_TEST_AMQP_TLS": "true", "TASKER_TEST_RABBITMQ_PORT": str(broker.port)}
        manager = fresh_cluster.manager("amqps-2", env=env, wait=False)
        # A second connection means the first was refused: the manager tries again, alive.
        wait_for(lambda: broker.accepted >= 2, 60, 0.1, "the manager to try the broker twice")
        assert manager.popen.poll() is None
        assert consumers("tasker_test", "tasker.worker.amqps-2") == 0, "it never consumed"
    finally:
        broker.stop()


def test_the_number_of_endpoints_per_task_is_limited_by_configuration(fresh_cluster):
    _, api = fresh_cluster.api(18913, env={"TASKER_TEST_MAX_ENDPOINTS": "3"})
    answer = api.post("worker", {"identifier": unique("many"), "endpoints": ["a", "b", "c", "d"]})
    assert answer.status == 400 and "names 4 endpoints, more than 3" in answer.json["error"]["message"]
    assert api.post("worker", {"identifier": unique("few"), "endpoints": ["a", "b", "c"]}).status == 201


def test_the_production_api_refuses_to_start_without_a_token():
    env = process_env(
        TASKER_MODE="production",
        MYSQL_PASSWD="x",
        MYSQL_HOST="127.0.0.1",
        RABBITMQ_PASSWD="x",
        RABBITMQ_HOST="127.0.0.1",
        TASKER_ENDPOINT="h1",
        TASKER_API_TOKENS="  ",
        TASKER_ENV_FILE="/nonexistent",
    )
    done = subprocess.run(
        [str(BIN / "api"), "--mode", "production", "--port", "18919"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert "api.auth is tokens but api.tokens is empty" in done.stderr.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def guarded_api(cluster):
    """An API that wants a token, for the tests of bodies refused before they are read."""
    _, api = cluster.api(
        19030, env={"TASKER_TEST_API_TOKENS": TOKENS, "TASKER_TEST_API_AUTH": "tokens"}, token="first-token-0123456789"
    )
    return api


def _answer_to_headers(port: int, head: bytes) -> tuple[bytes, dict]:
    """Send only a request's headers and read the answer: it must come without the body."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(head)
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            chunk = connection.recv(65536)
            if not chunk:
                break
            answer += chunk
    status_line, _, body = answer.partition(b"\r\n\r\n")
    return status_line.split(b"\r\n")[0], json.loads(body)


FORTY_MIB = 40 * 1024 * 1024
UNREAD = [
    ("POST to an unknown path, no token", b"POST /nowhere HTTP/1.1", False, 401),
    ("GET of a task, no token", b"GET /worker/x HTTP/1.1", False, 401),
    ("POST of a task, no token", b"POST /worker HTTP/1.1", False, 401),
    ("GET of a task with a token", b"GET /worker/x HTTP/1.1", True, 413),
    ("POST to an unknown path with a token", b"POST /nowhere HTTP/1.1", True, 404),
    ("PUT of a task with a token", b"PUT /worker/x HTTP/1.1", True, 405),
]


@pytest.mark.parametrize("case", UNREAD, ids=[case[0] for case in UNREAD])
def test_a_refused_request_is_answered_before_its_body_is_sent(guarded_api, case):
    _, request_line, with_token, status = case
    token = b"Authorization: Bearer first-token-0123456789\r\n" if with_token else b""
    head = request_line + b"\r\nHost: x\r\nContent-Type: application/json\r\n%sContent-Length: %d\r\n\r\n" % (
        token,
        FORTY_MIB,
    )
    status_line, body = _answer_to_headers(guarded_api.port, head)
    assert status_line.startswith(b"HTTP/1.1 %d" % status), status_line
    assert body["error"]["status"] == status


def test_a_client_that_sends_a_refused_body_whole_still_reads_the_answer(guarded_api):
    """urllib sends the whole body before it reads: the API drains it instead of resetting
    (10 MB is more than the sockets buffer, so a close with the body unread is a reset)."""
    url = "http://127.0.0.1:%d/worker" % guarded_api.port
    cases = [({"Authorization": "Bearer first-token-0123456789"}, 413), ({}, 401)]
    for (headers, status), size in itertools.product(cases, [1_100_000, 10_000_000, 10_000_000]):
        oversized = json.dumps({"identifier": "big", "payload": "x" * size}).encode()
        for _ in range(2):
            request = urllib.request.Request(
                url, data=oversized, method="POST", headers=dict(headers, **{"Content-Type": "application/json"})
            )
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(request, timeout=30)
            assert refused.value.code == status
            assert json.loads(refused.value.read())["error"]["status"] == status
    assert guarded_api.healthy(), "and the API goes on serving"


def test_a_refused_request_without_a_body_keeps_the_connection_open(guarded_api):
    connection = http.client.HTTPConnection("127.0.0.1", guarded_api.port, timeout=10)
    token = {"Authorization": "Bearer first-token-0123456789"}
    opened = None
    for method, path, headers, status in (
        ("GET", "/worker/x", {}, 401),
        ("GET", "/nowhere", token, 404),
        ("DELETE", "/worker/x", token, 405),
        ("GET", "/health", {}, 200),
    ):
        connection.request(method, path, headers=headers)
        answer = connection.getresponse()
        answer.read()
        assert answer.status == status, (method, path, answer.status)
        opened = opened or connection.sock
        assert connection.sock is opened, "%s %s closed the connection" % (method, path)
    connection.close()
