"""Delivery that scales: a task reaches only its endpoints' queues, expires there at its deadline,
idle queues have an expiry policy, and a run whose message expired after receipt is not lost."""

from __future__ import annotations

import datetime as dt
import json
import signal
import subprocess

import pika
import pytest
from sqlalchemy import select

from tasker.messaging.topology import expiry_policy
from tasker.storage.models import REGISTRATION
from tests.helpers import BIN, ROOT, process_env, unique, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


@pytest.fixture
def channel(test_config):
    settings = test_config.manager.message_queue
    credentials = pika.PlainCredentials(settings.username, settings.password)
    connection = pika.BlockingConnection(
        pika.ConnectionParameters(settings.host, settings.port, settings.virtual_host, credentials)
    )
    yield connection.channel()
    connection.close()


def depth(channel, endpoint: str) -> int:
    return channel.queue_declare("tasker.worker.%s" % endpoint, passive=True).method.message_count


def test_a_task_reaches_only_the_queues_of_the_endpoints_it_names(fresh_cluster, channel):
    _, api = fresh_cluster.api(18940)
    a, b, c = (unique("route") for _ in range(3))
    assert api.post("worker", {"identifier": unique("ab"), "endpoints": [a, b]}).status == 201
    assert api.post("worker", {"identifier": unique("c"), "endpoints": [c]}).status == 201
    assert api.post("worker", {"identifier": unique("bc"), "endpoints": [b, c]}).status == 201
    assert (depth(channel, a), depth(channel, b), depth(channel, c)) == (1, 2, 2)
    for endpoint in (a, b, c):
        channel.queue_delete("tasker.worker.%s" % endpoint)


def test_a_message_nobody_received_expires_at_its_deadline_and_is_not_dead_lettered(fresh_cluster, channel):
    _, api = fresh_cluster.api(18941, env={"TASKER_TEST_TIMEOUT": "2"})
    nobody, identifier = unique("nobody"), unique("expires")
    dead_before = channel.queue_declare("tasker.dead-letter", durable=True).method.message_count
    assert api.post("worker", {"identifier": identifier, "endpoints": [nobody]}).status == 201
    assert depth(channel, nobody) == 1
    wait_for(lambda: depth(channel, nobody) == 0, 20, 0.2, "the message to expire")
    api.wait_status("worker", identifier, ("INCOMPLETE",), timeout=20)
    assert channel.queue_declare("tasker.dead-letter", passive=True).method.message_count == dead_before
    channel.queue_delete("tasker.worker.%s" % nobody)


def test_initialize_sets_the_policy_that_deletes_idle_queues(test_config):
    listed = subprocess.run(
        ["rabbitmqctl", "list_policies", "-p", test_config.manager.message_queue.virtual_host],
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    line = next(line for line in listed.splitlines() if "tasker-queue-expiry" in line)
    assert '"expires":604800000' in line.replace(" ", "") and "queues" in line


def test_a_run_received_before_its_manager_was_killed_past_the_deadline_is_still_performed(fresh_cluster):
    env = {"TASKER_TEST_HANDLER_WAIT": "30"}
    manager = fresh_cluster.manager("orphan-1", env=env)
    _, api = fresh_cluster.api(18942, env={"TASKER_TEST_TIMEOUT": "2"})
    identifier = unique("orphan")
    assert api.post("worker", {"identifier": identifier, "endpoints": ["orphan-1"]}).status == 201
    api.wait_state("worker", identifier, "orphan-1")
    manager.signal(signal.SIGKILL)
    manager.popen.wait(10)
    wait_for(lambda: api.get("worker", identifier).json["task"]["deadline"] < utc_now(), 10, 0.2, "the deadline")
    fresh_cluster.manager("orphan-1", env={"TASKER_TEST_HANDLER_WAIT": "0.1"})
    response = api.wait_state("worker", identifier, "orphan-1", ("succeeded",), timeout=30)
    assert response["attempts"] == 2 and response["run"] == 1
    assert api.get("worker", identifier).json["task"]["status"] == "DONE"


def utc_now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def test_tasks_for_made_up_endpoints_leave_nothing_that_grows(fresh_cluster, channel, test_config):
    prefix = unique("fuzz")
    name, pattern, definition = expiry_policy(prefix, 3)
    vhost = test_config.manager.message_queue.virtual_host
    policy = ["rabbitmqctl", "set_policy", "-p", vhost, "--apply-to", "queues", name, pattern, json.dumps(definition)]
    subprocess.run(policy, check=True, capture_output=True, timeout=60)
    try:
        env = {"TASKER_TEST_TIMEOUT": "2", "TASKER_TEST_EXCHANGE": prefix}
        _, api = fresh_cluster.api(18943, env=env)
        made_up = [unique("typo") for _ in range(20)]
        identifiers = [unique("fuzzed") for _ in range(10)]
        for number, identifier in enumerate(identifiers):
            endpoints = [made_up[number], made_up[number + 10]]
            assert api.post("worker", {"identifier": identifier, "endpoints": endpoints}).status == 201
        queues = ["%s.worker.%s" % (prefix, endpoint) for endpoint in made_up]
        assert sum(channel.queue_declare(queue, passive=True).method.message_count for queue in queues) == 10 * 2
        for identifier in identifiers:
            body = api.wait_status("worker", identifier, ("INCOMPLETE",), timeout=20)
            assert [r["state"] for r in body["taskResponseList"]] == ["missing", "missing"]
        wait_for(lambda: not any(queue in listed_queues(vhost) for queue in queues), 30, 0.5, "idle queues to go")
    finally:
        subprocess.run(["rabbitmqctl", "clear_policy", "-p", vhost, name], capture_output=True, timeout=60)


def listed_queues(vhost: str) -> str:
    return subprocess.run(
        ["rabbitmqctl", "list_queues", "-q", "-p", vhost, "name"], capture_output=True, text=True, timeout=60
    ).stdout


def test_deregistering_an_endpoint_forgets_it_and_deletes_its_queue(fresh_cluster, channel, database):
    manager = fresh_cluster.manager("dereg-1")
    manager.stop()
    assert registered(database, "dereg-1")
    done = subprocess.run(
        [str(BIN / "initialize"), "--mode", "test", "--deregister", "worker", "dereg-1"],
        cwd=ROOT,
        env=process_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert not registered(database, "dereg-1")
    with pytest.raises(pika.exceptions.ChannelClosedByBroker, match="NOT_FOUND"):
        channel.queue_declare("tasker.worker.dereg-1", passive=True)


def registered(database, endpoint: str) -> bool:
    with database.connection() as connection:
        rows = connection.execute(select(REGISTRATION).where(REGISTRATION.c.endpoint == endpoint)).all()
    return bool(rows)


def test_a_task_whose_queue_was_deleted_under_the_api_is_not_lost(fresh_cluster, channel):
    _, api = fresh_cluster.api(18944)
    endpoint = unique("deleted")
    assert api.post("worker", {"identifier": unique("first"), "endpoints": [endpoint]}).status == 201
    channel.queue_delete("tasker.worker.%s" % endpoint)  # the API still counts it as declared
    identifier = unique("second")
    answer = api.post("worker", {"identifier": identifier, "endpoints": [endpoint]})
    assert answer.status == 202 and answer.json["status"] == "CREATED", "returned unroutable: not sent yet"
    api.wait_status("worker", identifier, ("SENT",), timeout=20)  # the outbox declared the queue again
    assert depth(channel, endpoint) == 1
    channel.queue_delete("tasker.worker.%s" % endpoint)
