"""Seeing the fleet: `GET /endpoints` tells a frozen or killed manager from a living one by its
heartbeats, shows what each runs and how many tasks wait for it; `DELETE` deregisters an
endpoint that is gone, with its queue; a max_concurrency slot held by a gone manager is freed."""

from __future__ import annotations

import signal
import time

import pika
import pytest

from tasker.lifecycle import DEAD_AFTER
from tests.helpers import consumers, unique, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
PORT = 19100
VHOST_ENV = "TASKER_TEST_VHOST"
# What a heartbeat's timing allows: the last beat up to one interval before the manager froze,
# DEAD_AFTER intervals of silence, a steward's tick and a second of rounding in the stored time.
GONE_WITHIN = (DEAD_AFTER + 1) * 2.0 + 2 + 10  # seconds, with room for a busy machine


@pytest.fixture(scope="module")
def api(cluster, test_config):
    assert test_config.manager.heartbeat_interval == 2.0, "the test run mode beats every 2 s"
    return cluster.api(PORT)[1]


def listing(api, task_type: str = "sleeper") -> dict[str, dict]:
    answer = api.request("GET", "/endpoints?type=%s" % task_type)
    assert answer.status == 200, answer
    return {entry["endpoint"]: entry for entry in answer.json["endpoints"]}


def shown(api, endpoint: str, task_type: str = "sleeper", **expected) -> dict | None:
    """The endpoint as listed, when every field in `expected` is as given; else None."""
    entry = listing(api, task_type).get(endpoint)
    if entry is not None and all(entry[name] == value for name, value in expected.items()):
        return entry
    return None


def wait_shown(api, endpoint: str, timeout: float = 30, task_type: str = "sleeper", **expected) -> dict:
    what = "%s listed with %s" % (endpoint, expected)
    return wait_for(lambda: shown(api, endpoint, task_type, **expected), timeout, 0.2, what)


def queue_exists(vhost: str, queue: str) -> bool:
    parameters = pika.ConnectionParameters("127.0.0.1", 5672, vhost, pika.PlainCredentials("guest", "guest"))
    connection = pika.BlockingConnection(parameters)
    try:
        connection.channel().queue_declare(queue, passive=True)
        return True
    except pika.exceptions.ChannelClosedByBroker:
        return False
    finally:
        if connection.is_open:
            connection.close()


def test_a_frozen_manager_is_not_alive_within_three_heartbeats_and_alive_again_once_it_goes_on(api, cluster):
    endpoint = unique("frozen")
    manager = cluster.manager(endpoint, "sleeper")
    before = wait_shown(api, endpoint, alive=True)
    assert before["heartbeat_interval"] == 2.0 and before["pid"] == manager.pid and before["version"]
    manager.signal(signal.SIGSTOP)
    try:
        frozen_at = time.monotonic()
        gone = wait_shown(api, endpoint, GONE_WITHIN, alive=False)
        assert time.monotonic() - frozen_at >= 2.0, "not before about three intervals of silence"
        deleted = api.request("DELETE", "/endpoints/sleeper/%s" % endpoint)
        assert deleted.status == 409 and "consumer" in deleted.json["error"]["message"], deleted
    finally:
        manager.signal(signal.SIGCONT)
    again = wait_shown(api, endpoint, alive=True)
    assert again["last_seen"] > gone["last_seen"] and again["registered_at"] == before["registered_at"]


def test_a_beat_shows_the_task_running_and_the_tasks_waiting_in_the_queue_and_in_the_manager(api, cluster):
    endpoint = unique("backlog")
    cluster.manager(endpoint, "sleeper", env={"TASKER_TEST_PREFETCH": "2"})  # 1 held waiting, the rest queued
    first, rest = unique("long"), [unique("behind") for _ in range(3)]
    assert api.post("sleeper", {"identifier": first, "payload": {"seconds": 6}, "endpoints": [endpoint]}).status == 201
    api.wait_state("sleeper", first, endpoint, ("running",))
    for identifier in rest:
        assert api.post("sleeper", {"identifier": identifier, "payload": {}, "endpoints": [endpoint]}).status == 201
    busy = wait_shown(api, endpoint, running=first, queued=3)
    assert busy["alive"] is True
    for identifier in rest:
        api.wait_state("sleeper", identifier, endpoint, ("succeeded",))
    wait_shown(api, endpoint, running=None, queued=0)


def test_an_endpoint_is_deregistered_with_its_queue_once_its_manager_stopped_and_tasks_go_elsewhere(api, cluster):
    vhost, gone, staying = cluster.env.get(VHOST_ENV, "tasker_test"), unique("retired"), unique("staying")
    manager = cluster.manager(gone, "sleeper")
    cluster.manager(staying, "sleeper")
    wait_shown(api, gone, alive=True)
    alive = api.request("DELETE", "/endpoints/sleeper/%s" % gone)
    assert alive.status == 409 and "is alive" in alive.json["error"]["message"], alive
    assert manager.stop() == 0
    stopped = wait_shown(api, gone, GONE_WITHIN, alive=False)
    assert stopped["running"] is None, "a manager stopped cleanly says it runs nothing"
    answer = api.request("DELETE", "/endpoints/sleeper/%s" % gone)
    assert answer.status == 204 and answer.raw == b"", answer
    assert gone not in listing(api) and not queue_exists(vhost, "tasker.sleeper.%s" % gone)
    for path in ("/endpoints/sleeper/%s" % gone, "/endpoints/sleeper/no-such-endpoint", "/endpoints/nope/x"):
        missing = api.request("DELETE", path)
        assert missing.status == 404 and missing.json["error"]["status"] == 404, (path, missing)
    identifier = unique("everyone")
    created = api.post("sleeper", {"identifier": identifier, "payload": {}})
    assert created.status in (201, 202), created
    assert staying in created.json["endpoints"] and gone not in created.json["endpoints"]
    api.wait_state("sleeper", identifier, staying, ("succeeded",))


def test_a_manager_frozen_past_the_brokers_patience_and_deregistered_comes_back_whole(api, cluster):
    """The broker drops a frozen manager's connection after its AMQP heartbeat: the queue has no
    consumer, and DELETE goes through. Going on, the manager connects again, declares its queue
    and registers with its next beat."""
    vhost, endpoint = cluster.env.get(VHOST_ENV, "tasker_test"), unique("revenant")
    queue = "tasker.sleeper.%s" % endpoint
    manager = cluster.manager(endpoint, "sleeper", env={"TASKER_TEST_HEARTBEAT": "2"})
    wait_shown(api, endpoint, alive=True)
    manager.signal(signal.SIGSTOP)
    try:
        wait_shown(api, endpoint, GONE_WITHIN, alive=False)
        wait_for(lambda: consumers(vhost, queue) == 0, 30, 0.2, "the broker to drop the frozen connection")
        answer = api.request("DELETE", "/endpoints/sleeper/%s" % endpoint)
        assert answer.status == 204, answer
        assert endpoint not in listing(api)
    finally:
        manager.signal(signal.SIGCONT)
    wait_shown(api, endpoint, alive=True)
    wait_for(lambda: consumers(vhost, queue) == 1, 30, 0.2, "the manager to consume its queue again")
    identifier = unique("after")
    assert api.post("sleeper", {"identifier": identifier, "payload": {}, "endpoints": [endpoint]}).status == 201
    api.wait_state("sleeper", identifier, endpoint, ("succeeded",))


def test_a_slot_of_max_concurrency_held_by_a_killed_manager_is_freed_once_it_is_not_alive(api, cluster):
    endpoints = [unique("slot-a"), unique("slot-b")]
    managers = {endpoint: cluster.manager(endpoint, "sleeper") for endpoint in endpoints}
    identifier = unique("rollout")
    body = {"identifier": identifier, "payload": {"seconds": 8}, "endpoints": endpoints, "max_concurrency": 1}
    assert api.post("sleeper", body).status == 201

    def states():
        answer = api.get("sleeper", identifier)
        return {response["endpoint"]: response["state"] for response in answer.json["taskResponseList"]}

    holder = wait_for(lambda: next((e for e, s in states().items() if s == "running"), None), 20, 0.1, "a run")
    waiting = next(endpoint for endpoint in endpoints if endpoint != holder)
    wait_shown(api, holder, running=identifier)
    managers[holder].signal(signal.SIGKILL)  # its handler's process dies with it
    assert states()[waiting] == "received", "the killed manager counts as alive for a while yet"
    wait_for(lambda: states()[waiting] == "running", GONE_WITHIN, 0.2, "the other endpoint to take the slot")
    assert states()[holder] == "running", "the killed manager's run is still recorded running"
    assert shown(api, holder, alive=False, running=identifier)
    api.wait_state("sleeper", identifier, waiting, ("succeeded",))
