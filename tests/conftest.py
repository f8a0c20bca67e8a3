"""Fixtures: the real services, the test database and vhost, and running tasker processes.

A missing RabbitMQ or MariaDB skips the tests that need it, except under CI (CI=true),
where it fails them: a suite that passes by skipping proves nothing.
"""

from __future__ import annotations

import os
import socket
import subprocess

import pytest

from tests.helpers import BIN, ROOT, Cluster, process_env

SERVICES = {"RabbitMQ": 5672, "MariaDB": 3306}
# tests/cluster starts a RabbitMQ cluster of its own and takes minutes: `make test-cluster` runs it.
collect_ignore = [] if os.environ.get("TASKER_CLUSTER_TESTS") == "1" else ["cluster"]


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def services() -> None:
    """RabbitMQ and MariaDB on 127.0.0.1, or a skip (a failure under CI)."""
    missing = [name for name, port in SERVICES.items() if not _port_open(port)]
    if missing:
        message = "%s not reachable on 127.0.0.1 (run scripts/ensure-services)" % " and ".join(missing)
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="session")
def test_config(services):
    """The `test` run mode's configuration, with its database and vhost reset once per session."""
    from tasker.config import load_config

    done = subprocess.run(
        [str(BIN / "initialize"), "--mode", "test", "-d", "-r", "--reset"],
        cwd=ROOT,
        env=process_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return load_config("test")


@pytest.fixture(scope="session")
def database(test_config):
    """The test database, reset for this session."""
    from tasker.storage import open_database

    db = open_database(test_config.manager.db)
    yield db
    db.close()


@pytest.fixture(scope="session")
def log_dir(tmp_path_factory):
    """Where the processes of this session write their logs."""
    return tmp_path_factory.mktemp("logs")


@pytest.fixture(scope="module")
def cluster(test_config, log_dir):
    """Start processes at will; all are stopped when the module ends."""
    processes = Cluster(log_dir, process_env())
    yield processes
    processes.stop_all()


@pytest.fixture
def fresh_cluster(test_config, log_dir):
    """Like `cluster`, but stopped at the end of the test."""
    processes = Cluster(log_dir, process_env())
    yield processes
    processes.stop_all()
