"""tasker on a RabbitMQ cluster of three nodes, two APIs behind HAProxy, four endpoints whose
managers list every node (each in another order) and use quorum queues.

While 2,000 tasks (`TASKER_CLUSTER_TASKS`) for the four endpoints are posted through HAProxy
at about 40 a second (`TASKER_CLUSTER_RATE`): once a fifth are posted, the node that leads
most endpoint queues is killed (SIGKILL), and started again once tasks are done again at half
the earlier rate; at half, one API process is killed (SIGKILL); at 70%, the node then leading
most queues is paused (SIGSTOP) until its peers count it out (net tick time 10 s), then
resumed, and it rejoins (`cluster_partition_handling = autoheal`). Then every task must be
DONE with one response per endpoint, each performed once unless its `attempts` say it was
delivered again. The time to recover from each fault is printed at the end of the run.
"""

from __future__ import annotations

import collections
import os
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import text

from tests.cluster.conftest import FIGURES
from tests.cluster.load import Poster, Progress
from tests.cluster.nodes import API_PORTS, HAPROXY_PORT, NODES, hosts
from tests.helpers import Api, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

TOTAL = int(os.environ.get("TASKER_CLUSTER_TASKS", "2000"))
RATE = float(os.environ.get("TASKER_CLUSTER_RATE", "40"))
ENDPOINTS = ["e1", "e2", "e3", "e4"]
QUEUES = ["tasker.worker.%s" % endpoint for endpoint in ENDPOINTS]
PREFIX = "cl-"
# Each execution takes this long, so that the managers, not the POSTs, set the pace.
HANDLER_WAIT = os.environ.get("TASKER_CLUSTER_HANDLER_WAIT", "0.01")


@dataclass
class Run:
    """What happened: answers to the POSTs, the faults, and what the handler wrote down."""

    statuses: dict[str, int]
    faults: dict[str, float] = field(default_factory=dict)  # name -> seconds since the start
    recoveries: dict[str, float | None] = field(default_factory=dict)  # name -> seconds to recover
    executions: dict[tuple[str, str], int] = field(default_factory=collections.Counter)
    seconds: float = 0.0


def _executions(folder: Path) -> collections.Counter:
    counts: collections.Counter = collections.Counter()
    for endpoint in ENDPOINTS:
        path = folder / endpoint
        for line in path.read_text().splitlines() if path.exists() else []:
            counts[(line.split()[0], endpoint)] += 1
    return counts


@pytest.fixture(scope="module")
def run(rabbit_cluster, cluster, database, log_dir, tmp_path_factory) -> Run:
    """Start APIs and managers, post the tasks, inflict the faults, wait until all are DONE."""
    folder = tmp_path_factory.mktemp("executions")
    env = {"TASKER_TEST_HANDLER_WAIT": HANDLER_WAIT}
    apis = [cluster.api(port, env=env)[0] for port in API_PORTS]
    wait_for(Api(HAPROXY_PORT).healthy, 30, 0.2, "HAProxy to find an API")
    for number, endpoint in enumerate(ENDPOINTS):
        # Each manager tries the nodes in another order, so connections spread over the cluster.
        order = {"TASKER_TEST_RABBITMQ_HOSTS": hosts(1 + number % len(NODES))}
        cluster.manager(endpoint, "worker", env=dict(env, **order), wait=False)
    for queue in QUEUES:
        wait_for(lambda queue=queue: rabbit_cluster.consumers(queue) > 0, 60, 0.5, "a consumer on %s" % queue)
    progress = Progress(database.engine, PREFIX)
    poster = Poster(HAPROXY_PORT, PREFIX, TOTAL, ENDPOINTS, RATE, folder)
    poster.start()
    faults: dict[str, float] = {}
    try:
        _kill_and_restart_a_leader(rabbit_cluster, poster, progress, faults)
        wait_for(lambda: len(poster.statuses) >= 0.5 * TOTAL, 600, 0.2, "half the tasks posted")
        apis[0].popen.kill()
        faults["API process killed"] = progress.now()
        paused = _pause_a_leader(rabbit_cluster, poster, progress, faults)
        wait_for(lambda: progress.done() >= TOTAL, 900, 0.5, "every task DONE")
        poster.join(120)
        wait_for(lambda: rabbit_cluster.running() == set(NODES), 180, 1, "node %d back in the cluster" % paused)
        FIGURES["node %d back in the cluster" % paused] = "at %.1f s" % progress.now()
    finally:
        progress.stop()
        progress.save(log_dir / "cluster-progress.json", faults)
    finished = progress.finished(TOTAL)
    moments = list(faults.values()) + [finished]
    recoveries = {
        name: progress.recovery(moment, following, TOTAL)
        for (name, moment), following in zip(faults.items(), moments[1:], strict=True)
    }
    result = Run(dict(poster.statuses), faults, recoveries, _executions(folder), finished)
    _record_figures(result, progress, poster.retries)
    return result


def _kill_and_restart_a_leader(rabbit_cluster, poster: Poster, progress: Progress, faults: dict[str, float]) -> None:
    wait_for(lambda: len(poster.statuses) >= 0.2 * TOTAL, 600, 0.2, "a fifth of the tasks posted")
    node = rabbit_cluster.busiest_leader(QUEUES)
    rabbit_cluster.kill(node)
    faults["leader node %d killed" % node] = killed = progress.now()
    wait_for(
        lambda: progress.recovery(killed, progress.now(), TOTAL) is not None,
        120,
        0.5,
        "tasks DONE again after the kill",
    )
    rabbit_cluster.start_node(node)
    faults["node %d started again" % node] = progress.now()
    wait_for(lambda: rabbit_cluster.running() == set(NODES), 120, 1, "node %d back in the cluster" % node)


def _pause_a_leader(rabbit_cluster, poster: Poster, progress: Progress, faults: dict[str, float]) -> int:
    wait_for(lambda: len(poster.statuses) >= 0.7 * TOTAL, 600, 0.2, "70% of the tasks posted")
    node = rabbit_cluster.busiest_leader(QUEUES)
    rabbit_cluster.pause(node)
    faults["leader node %d paused" % node] = progress.now()
    try:
        # Past the net tick time (10 s): the others count it as gone, as in a partition.
        wait_for(lambda: node not in rabbit_cluster.running(), 90, 1, "the others to count node %d out" % node)
    finally:
        rabbit_cluster.resume(node)
    faults["node %d resumed" % node] = progress.now()
    return node


def _record_figures(result: Run, progress: Progress, retries: int) -> None:
    FIGURES["tasks"] = "%d for %d endpoints, all DONE after %.1f s" % (TOTAL, len(ENDPOINTS), result.seconds)
    moments = list(result.faults.values()) + [result.seconds]
    for (name, moment), following in zip(result.faults.items(), moments[1:], strict=True):
        FIGURES[name] = (
            "at %.1f s; DONE at half the earlier rate again after %s s; until %.1f s, at most %.1f s with none DONE"
            % (
                moment,
                result.recoveries[name],
                following,
                progress.longest_stall(moment, following),
            )
        )
    twice = sum(1 for count in result.executions.values() if count > 1)
    FIGURES["POSTs sent again"] = retries
    FIGURES["runs performed more than once"] = twice


def _responses(database) -> list:
    query = text(
        "SELECT t.identifier, r.endpoint, r.state, r.attempts FROM task t JOIN task_response r ON r.task_id = t.id "
        "WHERE t.type = 'worker' AND t.identifier LIKE :p"
    )
    with database.engine.connect() as connection:
        return list(connection.execute(query, {"p": PREFIX + "%"}))


def test_every_post_through_haproxy_is_accepted(run):
    refused = {identifier: status for identifier, status in run.statuses.items() if status not in (200, 201, 202)}
    assert len(run.statuses) == TOTAL and not refused


def test_every_task_ends_done(run, database):
    query = text("SELECT status, COUNT(*) FROM task WHERE type = 'worker' AND identifier LIKE :p GROUP BY status")
    with database.engine.connect() as connection:
        statuses = dict(connection.execute(query, {"p": PREFIX + "%"}).all())
    assert statuses == {"DONE": TOTAL}


def test_each_task_has_exactly_one_succeeded_response_per_endpoint(run, database):
    rows = _responses(database)
    pairs = collections.Counter((row.identifier, row.endpoint) for row in rows)
    assert len(pairs) == TOTAL * len(ENDPOINTS)
    assert set(pairs.values()) == {1}
    assert {row.state for row in rows} == {"succeeded"}


def test_no_task_is_performed_twice_unless_its_attempts_say_so(run, database):
    attempts = {(row.identifier, row.endpoint): row.attempts for row in _responses(database)}
    assert set(run.executions) == set(attempts), "a run was never performed, or one the database does not know"
    beyond = {pair: (count, attempts[pair]) for pair, count in run.executions.items() if count > attempts[pair]}
    assert not beyond, "performed more often than delivered (executions, attempts): %s" % beyond


def test_tasks_are_done_again_within_a_minute_of_each_fault(run):
    assert len(run.recoveries) == 5
    slow = {name: seconds for name, seconds in run.recoveries.items() if seconds is None or seconds > 60}
    assert not slow, "seconds to recover (None: never): %s" % slow
