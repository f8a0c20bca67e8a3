"""A backlog of 10,000 tasks queued for a stopped manager, worked through with bounded memory."""

from __future__ import annotations

import os
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select

from tasker.storage.models import Task, TaskResponse
from tests.helpers import Api, unique, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.e2e, pytest.mark.slow, pytest.mark.long]
BACKLOG = int(os.environ.get("TASKER_TEST_BACKLOG", "10000"))
PREFETCH = 20


def rss_mb(pid: int) -> float:
    with open("/proc/%d/status" % pid) as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS for %d" % pid)


def unacknowledged(vhost: str, queue: str) -> int:
    listed = subprocess.run(
        ["rabbitmqctl", "list_queues", "-p", vhost, "-q", "name", "messages_unacknowledged"],
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    for line in listed.splitlines():
        name, _, count = line.partition("\t")
        if name == queue:
            return int(count)
    return 0


def test_a_manager_works_through_a_backlog_of_10000_tasks_with_bounded_memory(fresh_cluster, database, test_config):
    endpoint = unique("backlog")
    _, api = fresh_cluster.api(18930, env={"TASKER_TEST_TIMEOUT": "300"})
    prefix = unique("b")

    def post(number: int) -> int:
        client = Api(api.port)
        return client.post("worker", {"identifier": "%s-%d" % (prefix, number), "endpoints": [endpoint]}).status

    started = time.monotonic()
    with ThreadPoolExecutor(16) as pool:
        statuses = list(pool.map(post, range(BACKLOG)))
    assert statuses == [201] * BACKLOG
    print("posted %d tasks in %.1fs" % (BACKLOG, time.monotonic() - started))

    manager = fresh_cluster.manager(
        endpoint, env={"TASKER_TEST_HANDLER_WAIT": "0", "TASKER_TEST_PREFETCH": str(PREFETCH)}
    )
    started = time.monotonic()
    queue = "tasker.worker.%s" % endpoint

    def finished() -> int:
        with database.transaction() as session:
            return session.scalar(
                select(func.count())
                .select_from(TaskResponse)
                .where(TaskResponse.endpoint == endpoint, TaskResponse.status == 1)
            )

    peak_rss, peak_unacked = 0.0, 0
    while finished() < BACKLOG:
        assert time.monotonic() - started < 400, "only %d of %d done" % (finished(), BACKLOG)
        peak_rss = max(peak_rss, rss_mb(manager.pid))
        peak_unacked = max(peak_unacked, unacknowledged(test_config.manager.message_queue.virtual_host, queue))
        time.sleep(1)
    print(
        "worked through %d tasks in %.1fs; peak RSS %.0f MB, peak unacknowledged %d"
        % (BACKLOG, time.monotonic() - started, peak_rss, peak_unacked)
    )
    assert peak_unacked <= PREFETCH
    assert peak_rss < 100

    with database.transaction() as session:
        rows = session.execute(
            select(Task.status, Task.deadline, TaskResponse.start_time, TaskResponse.attempts)
            .join(TaskResponse, TaskResponse.task_id == Task.id)
            .where(TaskResponse.endpoint == endpoint)
        ).all()
    assert len(rows) == BACKLOG
    assert {status for status, _, _, _ in rows} == {"DONE"}
    assert all(received <= deadline for _, deadline, received, _ in rows), "receipt recorded before each deadline"
    assert {attempts for _, _, _, attempts in rows} == {1}
    wait_for(lambda: unacknowledged(test_config.manager.message_queue.virtual_host, queue) == 0, 30)
