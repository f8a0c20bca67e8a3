"""Broker and database outages, cut with a TCP proxy in front of the real RabbitMQ and MariaDB."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import time

import pytest
from sqlalchemy import update

from tasker.clock import utcnow
from tasker.storage import TaskStore
from tasker.storage.models import Task
from tasker.storage.tasks import NewTask
from tests.helpers import TcpProxy, unique, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


@pytest.fixture
def proxy():
    proxies: list[TcpProxy] = []

    def make(port: int, started: bool = True) -> TcpProxy:
        made = TcpProxy(port)
        if started:
            made.start()
        proxies.append(made)
        return made

    yield make
    for made in proxies:
        made.stop()


def db_uri(port: int) -> str:
    return "mysql+pymysql://root@127.0.0.1:%d/tasker_test" % port


def test_a_post_while_the_broker_is_down_is_accepted_and_sent_once_it_is_back(fresh_cluster, proxy):
    broker = proxy(5672, started=False)
    fresh_cluster.manager("outbox-1")
    _, api = fresh_cluster.api(18890, env={"TASKER_TEST_RABBITMQ_PORT": str(broker.port)})
    identifier = unique("outbox")
    accepted = api.post("worker", {"identifier": identifier, "endpoints": ["outbox-1"]})
    assert accepted.status == 202, accepted
    assert accepted.json["status"] == "CREATED" and accepted.headers["location"] == "/worker/" + identifier
    assert api.get("worker", identifier).json["task"]["status"] == "CREATED"

    broker.start()
    (response,) = api.wait_status("worker", identifier, ("DONE",), timeout=20)["taskResponseList"]
    assert response["attempts"] == 1


def test_the_deadline_check_survives_an_api_restart_and_runs_once_with_two_apis(fresh_cluster):
    env = {"TASKER_TEST_TIMEOUT": "2"}
    first, api = fresh_cluster.api(18891, env=env)
    identifiers = [unique("deadline") for _ in range(5)]
    for identifier in identifiers:
        assert api.post("worker", {"identifier": identifier, "endpoints": [unique("nobody")]}).status == 201
    first.signal(signal.SIGKILL)
    first.popen.wait(10)

    second, api = fresh_cluster.api(18892, env=env)
    third, _ = fresh_cluster.api(18893, env=env)
    for identifier in identifiers:
        api.wait_status("worker", identifier, ("INCOMPLETE",), timeout=20)
    logs = second.log() + third.log()
    assert [logs.count("task %s (worker) INCOMPLETE" % identifier) for identifier in identifiers] == [1] * 5


def test_the_api_answers_503_while_the_database_is_down_and_recovers_by_itself(fresh_cluster, proxy):
    database = proxy(3306)
    _, api = fresh_cluster.api(18894, env={"TASKER_TEST_DB_URI": db_uri(database.port)})
    database.stop()
    for answer in (api.post("worker", {"identifier": unique("down"), "endpoints": ["x"]}), api.get("worker", "any")):
        assert answer.status == 503, answer
        assert answer.json["error"]["status"] == 503 and "database unavailable" in answer.json["error"]["message"]
    assert api.request("GET", "/health").status == 503

    database.start()
    wait_for(
        lambda: api.post("worker", {"identifier": unique("up"), "endpoints": ["x"]}).status == 201,
        20,
        what="the API to recover",
    )


def test_a_manager_that_cannot_record_a_result_waits_for_the_database_and_records_it_once(fresh_cluster, proxy):
    database = proxy(3306)
    manager = fresh_cluster.manager(
        "dbdown-1", env={"TASKER_TEST_DB_URI": db_uri(database.port), "TASKER_TEST_HANDLER_WAIT": "2"}
    )
    _, api = fresh_cluster.api(18895)
    identifier = unique("dbdown")
    api.post("worker", {"identifier": identifier, "endpoints": ["dbdown-1"]})
    api.wait_state("worker", identifier, "dbdown-1")
    database.stop()
    manager.wait_log("cannot record outcomes on dbdown-1")
    assert api.get("worker", identifier).json["task"]["status"] == "SENT"

    database.start()
    (response,) = api.wait_status("worker", identifier, ("DONE",), timeout=30)["taskResponseList"]
    assert response["attempts"] == 1 and response["status"] == 1


def test_a_task_stored_by_an_api_that_died_before_publishing_is_sent_by_another_api(fresh_cluster, database):
    fresh_cluster.manager("orphan-1")
    identifier = unique("orphan")
    stored = TaskStore(database).create(NewTask("worker", identifier, {"x": 1}, ["orphan-1"]), 30).task
    with database.transaction() as session:  # its API died holding the claim, which has run out
        session.execute(update(Task).where(Task.id == stored.id).values(claim_until=utcnow() - dt.timedelta(seconds=1)))

    _, api = fresh_cluster.api(18896)
    (response,) = api.wait_status("worker", identifier, ("DONE",), timeout=20)["taskResponseList"]
    assert response["attempts"] == 1


def test_a_frozen_database_gives_503_within_seconds_and_all_recovers_when_it_thaws(fresh_cluster):
    fresh_cluster.manager("frozen-1", env={"TASKER_TEST_HANDLER_WAIT": "1"})
    _, api = fresh_cluster.api(18897)
    identifier = unique("frozen")
    assert api.post("worker", {"identifier": identifier, "endpoints": ["frozen-1"]}).status == 201
    api.wait_state("worker", identifier, "frozen-1", ("received", "running"))
    server = int(subprocess.run(["pidof", "mariadbd"], capture_output=True, text=True, timeout=10).stdout.split()[0])
    os.kill(server, signal.SIGSTOP)  # a server that neither answers nor closes: a frozen VM, a partition
    try:
        started = time.monotonic()
        refused = api.post("worker", {"identifier": unique("refused"), "endpoints": ["frozen-1"]})
        post_seconds = time.monotonic() - started
        started = time.monotonic()
        health = api.request("GET", "/health")
        health_seconds = time.monotonic() - started
    finally:
        os.kill(server, signal.SIGCONT)
    assert refused.status == 503 and refused.json["error"]["status"] == 503 and post_seconds < 12, post_seconds
    assert health.status == 503 and health_seconds < 12, health_seconds
    (response,) = api.wait_status("worker", identifier, ("DONE",), timeout=60)["taskResponseList"]
    assert (response["state"], response["attempts"]) == ("succeeded", 1)
    wait_for(api.healthy, 30, 0.2, "the API to answer again")
