"""Fixtures of the cluster suite: scripts/cluster's three RabbitMQ nodes and HAProxy, and the
test run mode pointed at them (`hosts` of every node, `queue_type: quorum`).

The cluster is started for the session and stopped at its end (`TASKER_CLUSTER_KEEP=1` leaves
it running). MariaDB missing skips, or fails under CI as the rest of the suite does.
"""

from __future__ import annotations

import os
import socket
import subprocess

import pytest

from tests.cluster.nodes import RabbitCluster, hosts
from tests.helpers import BIN, ROOT, Cluster, process_env

FIGURES: dict[str, object] = {}  # what the suite measured, printed at the end of the run


def cluster_env(**overrides: str) -> dict[str, str]:
    """The environment of tasker processes that use the cluster."""
    settings = {
        "TASKER_TEST_RABBITMQ_HOSTS": hosts(1),
        "TASKER_TEST_QUEUE_TYPE": "quorum",
        "TASKER_TEST_VHOST": os.environ.get("TASKER_TEST_VHOST", "tasker_cluster"),
        "TASKER_TEST_WORKER_HANDLER": "tests.cluster.counting",
        # A task's delivery deadline: long enough that no task goes INCOMPLETE during a fault.
        "TASKER_TEST_TIMEOUT": "600",
        # bin/initialize -r runs `rabbitmqctl`: scripts/cluster's wrapper there reaches the cluster.
        "PATH": "%s:%s" % (ROOT / "var" / "cluster" / "bin", os.environ.get("PATH", "")),
    }
    settings.update(overrides)
    return process_env(**settings)


@pytest.fixture(scope="session")
def rabbit_cluster() -> RabbitCluster:
    """The three nodes and HAProxy, started for the session."""
    try:
        socket.create_connection(("127.0.0.1", 3306), timeout=2).close()
    except OSError:
        if os.environ.get("CI") == "true":
            pytest.fail("MariaDB not reachable on 127.0.0.1:3306 (run scripts/ensure-services)")
        pytest.skip("MariaDB not reachable on 127.0.0.1:3306 (run scripts/ensure-services)")
    nodes = RabbitCluster(cluster_env()["TASKER_TEST_VHOST"])
    nodes.start()
    yield nodes
    if os.environ.get("TASKER_CLUSTER_KEEP") != "1":
        nodes.stop()


@pytest.fixture(scope="session")
def test_config(rabbit_cluster):
    """The test run mode on the cluster, its database and vhost reset once per session."""
    from tasker.config import load_config

    env = cluster_env()
    done = subprocess.run(
        [str(BIN / "initialize"), "--mode", "test", "-d", "-r", "--reset"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return load_config("test")


@pytest.fixture(scope="module")
def cluster(test_config, log_dir):
    """API and manager processes on the cluster, stopped when the module ends."""
    processes = Cluster(log_dir, cluster_env())
    yield processes
    processes.stop_all()


def pytest_terminal_summary(terminalreporter) -> None:
    """Print what the suite measured (times to recover, counts) after the results."""
    if FIGURES:
        terminalreporter.section("cluster figures")
        for name, value in FIGURES.items():
            terminalreporter.write_line("%s: %s" % (name, value))
