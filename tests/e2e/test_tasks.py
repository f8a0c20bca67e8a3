"""The system through its real processes: bin/api and bin/manager against RabbitMQ and MariaDB."""

from __future__ import annotations

import json
import socket
import subprocess

import pika
import pytest
from sqlalchemy import delete, select

from tasker.storage.models import EndpointRegistration
from tests.helpers import BIN, ROOT, process_env, unique, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
PORT = 18881
CONSOLES = ["console1", "console2"]


@pytest.fixture(scope="module")
def api(cluster, database):
    with database.transaction() as session:  # earlier tests may have registered other endpoints
        session.execute(delete(EndpointRegistration).where(EndpointRegistration.endpoint.notin_(CONSOLES)))
    for task_type in ("worker", "backup"):
        for endpoint in CONSOLES:
            cluster.manager(endpoint, task_type)
    cluster.manager("console1", "failing")
    return cluster.api(PORT)[1]


def test_the_readme_curl_session_gives_the_seed_answers(api):
    testdata = json.loads((ROOT / "testdata.json").read_text())
    created = api.post("worker", testdata)
    assert created.status == 201, created
    assert created.headers["location"] == "/worker/e7bd91d0-16ad-11e2-892e-0800200c9a66"
    task = created.json
    assert {k: task[k] for k in ("status", "endpoints", "identifier", "type", "payload")} == {
        "status": "SENT",
        "endpoints": CONSOLES,
        "identifier": "e7bd91d0-16ad-11e2-892e-0800200c9a66",
        "type": "worker",
        "payload": {"foo": "bar"},
    }
    assert isinstance(task["id"], int) and len(task["start_time"]) == 19

    done = api.wait_status("worker", testdata["identifier"], ("DONE",))
    assert done["task"]["id"] == task["id"]
    responses = sorted(done["taskResponseList"], key=lambda r: r["endpoint"])
    assert [r["endpoint"] for r in responses] == CONSOLES
    for response in responses:
        assert response["status"] == 1 and response["errnr"] == 0 and response["errmsg"] is None
        assert response["payload"] == {"yiya": "yippie", "yeah": 1234123}
        assert response["task_id"] == task["id"] and response["attempts"] == 1
        assert set(response) >= {"id", "start_time", "last_modified_time"}


def test_backup_fails_with_errnr_32_on_both_endpoints(api):
    identifier = unique("backup")
    assert api.post("backup", {"identifier": identifier, "endpoints": CONSOLES}).status == 201
    responses = api.wait_status("backup", identifier, ("DONE",))["taskResponseList"]
    assert sorted((r["endpoint"], r["errnr"], r["errmsg"]) for r in responses) == [
        ("console1", 32, "could not backup!"),
        ("console2", 32, "could not backup!"),
    ]


def test_a_task_for_console2_alone_runs_only_there(api):
    identifier = unique("only2")
    assert api.post("worker", {"identifier": identifier, "endpoints": ["console2"]}).json["endpoints"] == ["console2"]
    body = api.wait_status("worker", identifier, ("DONE",))
    assert [r["endpoint"] for r in body["taskResponseList"]] == ["console2"]


def test_a_task_without_endpoints_reaches_every_registered_endpoint(api, database):
    with database.transaction() as session:
        registered = sorted(
            session.scalars(select(EndpointRegistration.endpoint).where(EndpointRegistration.type == "backup"))
        )
    identifier = unique("all")
    created = api.post("backup", {"identifier": identifier, "payload": [1, 2]})
    assert created.status == 201 and created.json["endpoints"] == registered == CONSOLES
    body = api.wait_status("backup", identifier, ("DONE",))
    assert sorted(r["endpoint"] for r in body["taskResponseList"]) == registered


def test_a_raising_handler_gives_errnr_1_and_the_manager_goes_on(api):
    first, second = unique("fail"), unique("fail")
    for identifier in (first, second):
        assert api.post("failing", {"identifier": identifier, "endpoints": ["console1"]}).status == 201
    for identifier in (first, second):
        (response,) = api.wait_status("failing", identifier, ("DONE",))["taskResponseList"]
        assert response["errnr"] == 1 and response["errmsg"] == "RuntimeError: disk full on console1"


def test_a_retry_is_safe_and_other_content_is_a_conflict(api):
    body = {"identifier": unique("retry"), "payload": {"a": 1}, "endpoints": ["console1"]}
    first, again = api.post("worker", body), api.post("worker", body)
    assert (first.status, again.status) == (201, 200)
    assert again.json["id"] == first.json["id"]
    (response,) = api.wait_status("worker", body["identifier"], ("DONE",))["taskResponseList"]
    assert response["attempts"] == 1, "the retry sent nothing"
    conflict = api.post("worker", dict(body, payload={"a": 2}))
    assert conflict.status == 409 and conflict.json["error"]["status"] == 409
    assert api.get("worker", body["identifier"]).json["task"]["payload"] == {"a": 1}


def test_a_read_of_an_unknown_identifier_is_404(api):
    answer = api.get("worker", "no-such-task")
    assert answer.status == 404 and answer.json["error"] == {
        "status": 404,
        "message": "no worker task with identifier 'no-such-task'",
    }


BAD_REQUESTS = [
    ("malformed JSON", "POST", "/worker", b"{nope", "application/json", 400, "not valid JSON"),
    ("not an object", "POST", "/worker", b"[1]", "application/json", 400, "must be a JSON object"),
    ("no identifier", "POST", "/worker", b'{"payload": 1}', "application/json", 400, "identifier is missing"),
    ("bad identifier", "POST", "/worker", b'{"identifier": "a b"}', "application/json", 400, "is not 1 to 50"),
    ("identifier type", "POST", "/worker", b'{"identifier": 5}', "application/json", 400, "must be a string"),
    (
        "endpoints type",
        "POST",
        "/worker",
        b'{"identifier": "x", "endpoints": "c"}',
        "application/json",
        400,
        "must be a list",
    ),
    (
        "duplicate endpoints",
        "POST",
        "/worker",
        b'{"identifier": "x", "endpoints": ["c", "c"]}',
        "application/json",
        400,
        "named more than once",
    ),
    ("unknown type", "POST", "/nosuchtype", b'{"identifier": "x"}', "application/json", 404, "no such path"),
    ("unknown path", "GET", "/worker/x/y", None, None, 404, "no such path"),
    ("wrong method", "DELETE", "/worker/x", None, None, 405, "method DELETE is not allowed"),
    ("PUT on the collection", "PUT", "/worker", None, None, 405, "method PUT is not allowed"),
    (
        "not JSON",
        "POST",
        "/worker",
        b"identifier=x",
        "application/x-www-form-urlencoded",
        415,
        "must be application/json",
    ),
    ("no content type", "POST", "/worker", b'{"identifier": "x"}', None, 415, "must be application/json"),
]


@pytest.mark.parametrize("case", BAD_REQUESTS, ids=[case[0] for case in BAD_REQUESTS])
def test_bad_input_gets_a_json_error_with_its_status(api, case):
    _, method, path, raw, content_type, status, message = case
    headers = {"Content-Type": content_type} if content_type else {}
    answer = api.request(method, path, raw=raw, headers=headers)
    assert answer.status == status, answer
    assert answer.headers["content-type"].startswith("application/json")
    assert answer.json["error"]["status"] == status and message in answer.json["error"]["message"], answer


def test_a_body_over_the_limit_is_413_before_it_is_sent(api):
    """As curl does for large bodies: headers with `Expect: 100-continue`, the body only if welcome."""
    with socket.create_connection(("127.0.0.1", PORT), timeout=10) as connection:
        connection.sendall(
            b"POST /worker HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 2000000\r\nExpect: 100-continue\r\n\r\n"
        )
        answer = b""
        while b"}}" not in answer:
            chunk = connection.recv(65536)
            if not chunk:
                break
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413"), answer
    assert json.loads(body)["error"] == {
        "status": 413,
        "message": "body of 2000000 bytes is over the limit of 1048576 bytes",
    }


def test_the_manager_survives_undecodable_messages_and_dead_letters_them(api, cluster, test_config):
    manager = next(p for p in cluster.processes if "console2" in p.args and "worker" in p.args)
    settings = test_config.manager.message_queue
    parameters = pika.ConnectionParameters(
        settings.host, settings.port, settings.virtual_host, pika.PlainCredentials(settings.username, settings.password)
    )
    bad = [
        b"\x80\x04\x95pickle",
        b"not json",
        b'{"id": "1"}',
        b'{"id": 1, "identifier": "x", "type": "os", "endpoints": ["console2"]}',
        json.dumps({"id": 1, "identifier": "x", "type": "backup", "endpoints": ["console2"]}).encode(),
        json.dumps({"id": 1, "identifier": "x", "type": "../../etc/passwd", "endpoints": ["console2"]}).encode(),
        json.dumps(
            {"id": 1, "identifier": "x", "type": "worker", "endpoints": ["console2"], "payload": "a" * 2**24}
        ).encode(),
        json.dumps({"id": 10**9, "identifier": "x", "type": "worker", "endpoints": ["console2"]}).encode(),
    ]
    connection = pika.BlockingConnection(parameters)
    try:
        channel = connection.channel()
        for body in bad:
            channel.basic_publish("", "tasker.worker.console2", body)
        wait_for(
            lambda: channel.queue_declare("tasker.dead-letter", passive=True).method.message_count >= len(bad),
            20,
            0.2,
            "the bad messages in the dead-letter queue",
        )
        reasons = []
        while (got := channel.basic_get("tasker.dead-letter", auto_ack=True))[0] is not None:
            reasons.append(got[1].headers["x-tasker-reason"])
            assert got[1].headers["x-tasker-queue"] == "tasker.worker.console2"
    finally:
        connection.close()
    identifier = unique("after-bad")
    assert api.post("worker", {"identifier": identifier, "endpoints": ["console2"]}).status == 201
    api.wait_status("worker", identifier, ("DONE",))
    assert manager.popen.poll() is None
    assert len(reasons) == len(bad)
    for reason in ("is not JSON", "a backup task for console2, not for", "no valid task type", "no valid task id"):
        assert any(reason in text for text in reasons), reason
    assert any("over the limit of 16777216" in text for text in reasons)
    assert "no such task or endpoint in the database" in reasons


def test_bin_manager_refuses_a_task_type_that_is_not_configured():
    done = subprocess.run(
        [str(BIN / "manager"), "--mode", "test", "--endpoint", "console1", "--tasktype", "os"],
        cwd=ROOT,
        env=process_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "manager: error: task type 'os' is not configured in run mode test "
        "(task_types: worker, backup, failing, sleeper, horse, flaky, chatty, cli_demo)"
    )


def test_a_201_task_waits_in_the_queue_of_each_endpoint_whose_manager_is_not_running(api, test_config):
    settings = test_config.manager.message_queue
    parameters = pika.ConnectionParameters(
        settings.host, settings.port, settings.virtual_host, pika.PlainCredentials(settings.username, settings.password)
    )
    endpoints = [unique("absent"), unique("absent")]
    assert api.post("worker", {"identifier": unique("queued"), "endpoints": endpoints}).status == 201
    connection = pika.BlockingConnection(parameters)
    try:
        channel = connection.channel()
        for endpoint in endpoints:
            declared = channel.queue_declare("tasker.worker.%s" % endpoint, passive=True)
            assert declared.method.message_count == 1, endpoint
            channel.queue_delete("tasker.worker.%s" % endpoint)
    finally:
        connection.close()
