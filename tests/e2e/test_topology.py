"""Beyond one broker node: quorum queues and a list of brokers to fail over between."""

from __future__ import annotations

import socket
import subprocess

import pytest

from tests.helpers import unique

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def test_quorum_queues_carry_tasks_on_a_single_node(fresh_cluster, test_config):
    prefix = unique("quorum")
    env = {"TASKER_TEST_QUEUE_TYPE": "quorum", "TASKER_TEST_EXCHANGE": prefix}
    fresh_cluster.manager("quorum-1", env=env)
    _, api = fresh_cluster.api(18920, env=env)
    identifier = unique("q")
    assert api.post("worker", {"identifier": identifier, "endpoints": ["quorum-1"]}).status == 201
    api.wait_status("worker", identifier, ("DONE",))
    listed = subprocess.run(
        ["rabbitmqctl", "list_queues", "-p", test_config.manager.message_queue.virtual_host, "name", "type"],
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    assert "%s.worker.quorum-1\tquorum" % prefix in listed


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_api_and_managers_fail_over_to_the_next_broker_of_the_list(fresh_cluster):
    env = {"TASKER_TEST_RABBITMQ_HOSTS": "127.0.0.1:%d, 127.0.0.1:5672" % closed_port()}
    fresh_cluster.manager("failover-1", env=env)
    _, api = fresh_cluster.api(18921, env=env)
    identifier = unique("failover")
    created = api.post("worker", {"identifier": identifier, "endpoints": ["failover-1"]})
    assert created.status == 201, "the API tried the next broker at once"
    api.wait_status("worker", identifier, ("DONE",))
