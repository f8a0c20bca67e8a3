"""Faults through real processes: a cold stop, RabbitMQ and MariaDB restarted, long tasks, two outboxes."""

from __future__ import annotations

import signal
import subprocess

import pytest

from tests.helpers import TcpProxy, unique, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.e2e, pytest.mark.slow]


def rabbitmqctl(*args: str) -> str:
    done = subprocess.run(["rabbitmqctl", *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def responses_of(api, task_type, identifier):
    return api.get(task_type, identifier).json["taskResponseList"]


def test_a_second_sigterm_exits_at_once_and_the_task_is_performed_again_later(fresh_cluster):
    manager = fresh_cluster.manager("cold-1", env={"TASKER_TEST_HANDLER_WAIT": "30"})
    _, api = fresh_cluster.api(18900)
    identifier = unique("cold")
    api.post("worker", {"identifier": identifier, "endpoints": ["cold-1"]})
    api.wait_state("worker", identifier, "cold-1")
    manager.signal(signal.SIGTERM)
    manager.wait_log("stopping: finishing the task in hand first")
    manager.signal(signal.SIGTERM)
    assert manager.popen.wait(5) == 1
    assert responses_of(api, "worker", identifier)[0]["status"] == 0

    fresh_cluster.manager("cold-1", env={"TASKER_TEST_HANDLER_WAIT": "0.1"})
    (response,) = api.wait_status("worker", identifier, ("DONE",), timeout=30)["taskResponseList"]
    assert response["attempts"] == 2 and response["status"] == 1


@pytest.fixture
def rabbitmq_restored():
    yield
    subprocess.run(["rabbitmqctl", "start_app"], capture_output=True, timeout=120)


def test_rabbitmq_stopped_and_started_loses_nothing_and_duplicates_nothing(fresh_cluster, rabbitmq_restored):
    endpoints = ["bounce-1", "bounce-2"]
    managers = [fresh_cluster.manager(e, env={"TASKER_TEST_HANDLER_WAIT": "0.3"}) for e in endpoints]
    _, api = fresh_cluster.api(18901)
    before = [unique("before") for _ in range(10)]
    for identifier in before:
        assert api.post("worker", {"identifier": identifier, "endpoints": endpoints}).status == 201
    api.wait_state("worker", before[1], "bounce-1", ("running", "succeeded"))

    rabbitmqctl("stop_app")
    during = unique("during")
    accepted = api.post("worker", {"identifier": during, "endpoints": endpoints})
    assert accepted.status == 202 and accepted.json["status"] == "CREATED"
    rabbitmqctl("start_app")

    for identifier in [*before, during]:
        body = api.wait_status("worker", identifier, ("DONE",), timeout=90)
        assert sorted(r["endpoint"] for r in body["taskResponseList"]) == endpoints
    for manager in managers:
        assert manager.popen.poll() is None
        log = manager.log()
        assert "RabbitMQ connection lost" in log and log.count("consuming tasker.worker.") >= 2
    for identifier in [*before, during]:
        states = [r["state"] for r in api.get("worker", identifier).json["taskResponseList"]]
        assert states == ["succeeded", "succeeded"], identifier


def test_two_api_processes_send_a_task_accepted_while_the_broker_was_down_once(fresh_cluster):
    broker = TcpProxy(5672)
    try:
        fresh_cluster.manager("twice-1")
        env = {"TASKER_TEST_RABBITMQ_PORT": str(broker.port)}
        first, api = fresh_cluster.api(18902, env=env)
        second, _ = fresh_cluster.api(18903, env=env)
        identifiers = [unique("outbox2") for _ in range(20)]
        for identifier in identifiers:
            assert api.post("worker", {"identifier": identifier, "endpoints": ["twice-1"]}).status == 202
        broker.start()
        for identifier in identifiers:
            (response,) = api.wait_status("worker", identifier, ("DONE",), timeout=60)["taskResponseList"]
            assert response["attempts"] == 1
        logs = first.log() + second.log()
        assert [logs.count("task %s (worker) sent from the outbox" % i) for i in identifiers] == [1] * 20
    finally:
        broker.stop()


def mariadb(action: str) -> None:
    if action == "stop":
        subprocess.run(["mariadb-admin", "-uroot", "shutdown"], check=True, timeout=60)
        wait_for(
            lambda: subprocess.run(["pgrep", "-x", "mariadbd"], capture_output=True).returncode != 0,
            60,
            what="mariadbd to exit",
        )
    else:
        subprocess.run(
            ["start-stop-daemon", "--start", "--oknodo", "--background", "--exec", "/usr/sbin/mariadbd"],
            check=True,
            timeout=60,
        )
        wait_for(
            lambda: subprocess.run(["mariadb-admin", "-uroot", "ping"], capture_output=True).returncode == 0,
            60,
            0.5,
            "MariaDB to answer",
        )


@pytest.fixture
def mariadb_restored():
    yield
    mariadb("start")


def test_mariadb_stopped_and_started_gives_503_meanwhile_and_loses_no_result(fresh_cluster, mariadb_restored):
    manager = fresh_cluster.manager("mariadb-1", env={"TASKER_TEST_HANDLER_WAIT": "3"})
    _, api = fresh_cluster.api(18904)
    identifier = unique("mariadb")
    assert api.post("worker", {"identifier": identifier, "endpoints": ["mariadb-1"]}).status == 201
    api.wait_state("worker", identifier, "mariadb-1")

    mariadb("stop")
    answer = api.post("worker", {"identifier": unique("refused"), "endpoints": ["mariadb-1"]})
    assert answer.status == 503 and answer.json["error"]["status"] == 503
    assert api.get("worker", identifier).status == 503
    manager.wait_log("cannot record outcomes on mariadb-1", timeout=20)
    mariadb("start")

    (response,) = api.wait_status("worker", identifier, ("DONE",), timeout=60)["taskResponseList"]
    assert (response["attempts"], response["status"], response["state"]) == (1, 1, "succeeded")


def test_a_handler_longer_than_three_heartbeats_keeps_its_connection(fresh_cluster):
    manager = fresh_cluster.manager("beat-1", env={"TASKER_TEST_HEARTBEAT": "1", "TASKER_TEST_HANDLER_WAIT": "6"})
    _, api = fresh_cluster.api(18905)
    identifier = unique("beat")
    api.post("worker", {"identifier": identifier, "endpoints": ["beat-1"]})
    (response,) = api.wait_status("worker", identifier, ("DONE",), timeout=30)["taskResponseList"]
    assert response["attempts"] == 1
    assert "connection lost" not in manager.log() and "channel closed" not in manager.log()


@pytest.fixture
def short_consumer_timeout():
    """The broker's consumer timeout lowered to 5 s (RabbitMQ checks it about once a minute)."""
    before = rabbitmqctl("eval", "application:get_env(rabbit, consumer_timeout).").strip()
    rabbitmqctl("eval", "application:set_env(rabbit, consumer_timeout, 5000).")
    yield
    if before.startswith("{ok,"):
        rabbitmqctl("eval", "application:set_env(rabbit, consumer_timeout, %s)." % before[4:-1])
    else:
        rabbitmqctl("eval", "application:unset_env(rabbit, consumer_timeout).")


@pytest.mark.long  # RabbitMQ looks for consumer timeouts once a minute
def test_tasks_held_longer_than_the_consumer_timeout_are_neither_redelivered_nor_run_twice(
    fresh_cluster, short_consumer_timeout
):
    manager = fresh_cluster.manager("long-1", "sleeper", env={"TASKER_TEST_CONSUMER_TIMEOUT": "5"})
    _, api = fresh_cluster.api(18906)
    running, waiting = unique("long"), unique("behind")
    api.post("sleeper", {"identifier": running, "endpoints": ["long-1"], "payload": {"seconds": 75}})
    api.post("sleeper", {"identifier": waiting, "endpoints": ["long-1"], "payload": {"seconds": 0}})
    for identifier in (running, waiting):
        (response,) = api.wait_status("sleeper", identifier, ("DONE",), timeout=120)["taskResponseList"]
        assert response["attempts"] == 1 and response["status"] == 1
    log = manager.log()
    assert "renewing the delivery of task %s" % running in log
    assert "renewing the delivery of task %s" % waiting in log
    assert "channel closed" not in log and "connection lost" not in log
