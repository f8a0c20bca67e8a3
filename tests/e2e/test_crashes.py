"""A run that kills its manager, through real managers: after `manager.max_crashes` deliveries
that ended with the manager gone, the run is recorded failed and its message acknowledged,
instead of killing manager after manager forever."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pika
import pytest
from sqlalchemy import select

from tasker.storage.models import RESPONSE, TASK
from tests.helpers import alive, unique, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.e2e, pytest.mark.slow]

MAX_CRASHES = 2
ENDPOINT = "crasher-1"
# The horse's time limit and the delivery deadline are well beyond the test, so neither ends the run.
MANAGER_ENV = {"TASKER_TEST_MAX_CRASHES": str(MAX_CRASHES), "TASKER_TEST_HORSE_TIMEOUT": "300"}
API_ENV = {"TASKER_TEST_TIMEOUT": "300"}


def test_a_run_whose_manager_is_killed_max_crashes_times_is_failed_and_never_run_again(
    fresh_cluster, database, tmp_path
):
    manager = fresh_cluster.manager(ENDPOINT, "horse", env=MANAGER_ENV)
    _, api = fresh_cluster.api(19020, env=API_ENV)
    identifier, pidfile = unique("crash"), tmp_path / "grandchild.pid"
    task = {"identifier": identifier, "endpoints": [ENDPOINT], "payload": {"do": "grandchild", "pidfile": str(pidfile)}}
    assert api.post("horse", task).status == 201
    left_behind = []
    for attempt in range(1, MAX_CRASHES + 1):
        grandchild = wait_for(lambda: handler_started(pidfile), 30, 0.05, "the handler of attempt %d" % attempt)
        left_behind.append(grandchild)
        group = os.getpgid(grandchild)
        wait_for(lambda group=group: recorded_group(database, identifier) == group, 10, 0.05, "its group recorded")
        assert api.response("horse", identifier, ENDPOINT)["attempts"] == attempt
        manager.signal(signal.SIGKILL)
        manager.popen.wait(10)
        manager = fresh_cluster.manager(ENDPOINT, "horse", env=MANAGER_ENV)
    response = api.wait_state("horse", identifier, ENDPOINT, ("failed",), timeout=30)
    assert response["errmsg"] == "the run's manager stopped 2 times while holding it (manager.max_crashes)"
    assert (response["attempts"], response["errnr"], response["status"]) == (MAX_CRASHES + 1, 1, 1)
    read = api.get("horse", identifier).json["task"]
    assert (read["status"], read["settled"]) == ("DONE", True)
    wait_for(lambda: not any(alive(pid) for pid in left_behind), 20, 0.1, "what the killed runs left to be killed")
    assert not pidfile.exists(), "the handler did not run again"
    after = {"identifier": unique("after"), "endpoints": [ENDPOINT], "payload": {"do": "return", "payload": 1}}
    assert api.post("horse", after).status == 201
    assert api.wait_state("horse", after["identifier"], ENDPOINT, ("succeeded",))["payload"] == 1
    assert manager.stop() == 0, "the manager that failed the run lived on and stopped cleanly"
    assert waiting_messages("horse", ENDPOINT) == 0, "the message was acknowledged, not put back"


def handler_started(pidfile: Path) -> int | None:
    """The pid of the process the handler started, once it wrote it (the file is taken away)."""
    if not pidfile.exists():
        return None
    pid = int(pidfile.read_text())
    pidfile.unlink()
    return pid


def recorded_group(database, identifier: str) -> int | None:
    """The process group the database holds for the run (the one a successor kills)."""
    query = (
        select(RESPONSE.c.pgid)
        .join(TASK, TASK.c.id == RESPONSE.c.task_id)
        .where(TASK.c.type == "horse", TASK.c.identifier == identifier)
    )
    with database.connection() as connection:
        return connection.execute(query).scalar_one_or_none()


def waiting_messages(task_type: str, endpoint: str) -> int:
    """Messages ready in the endpoint's queue of the test vhost."""
    vhost = os.environ.get("TASKER_TEST_VHOST", "tasker_test")
    queue = "%s.%s.%s" % (os.environ.get("TASKER_TEST_EXCHANGE", "tasker"), task_type, endpoint)
    parameters = pika.ConnectionParameters("127.0.0.1", 5672, vhost, pika.PlainCredentials("guest", "guest"))
    connection = pika.BlockingConnection(parameters)
    try:
        return connection.channel().queue_declare(queue, passive=True).method.message_count
    finally:
        connection.close()
