"""Statements over MariaDB's max_allowed_packet: refused for good, never retried as an outage.

MariaDB answers a statement just over the limit with error 1153 and closes the connection; one
far over it resets the connection while it is still being sent, which the client alone cannot
tell from a server that went away. Both must be a permanent refusal, and a manager must record
the run whose result did not fit as failed and go on.
"""

from __future__ import annotations

import threading

import pytest

from tasker.errors import StatementTooLarge
from tasker.manager.manager import Manager
from tasker.manager.workhorse import Outcome, RunState
from tasker.messaging.message import encode_task
from tasker.messaging.stub import StubBroker
from tasker.status import ResponseState
from tasker.storage import Arrival, Finish, NewTask, ResponseStore, TaskStore
from tests.helpers import unique, wait_for
from tests.unit.stub_horse import StubHorse

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def limit(database) -> int:
    """The server's max_allowed_packet, in bytes."""
    with database.connection() as connection:
        return int(connection.exec_driver_sql("SELECT @@max_allowed_packet").scalar_one())


def received_task(database, endpoint="e1"):
    """A sent task whose run `endpoint` has received."""
    tasks = TaskStore(database)
    task = tasks.create(NewTask("worker", unique("packet"), {"n": 1}, [endpoint]), 30).task
    tasks.mark_sent([task.id])
    ResponseStore(database).record_receipts([Arrival(task.id, 1, "worker")], endpoint)
    return task


def state(database, task, endpoint="e1"):
    _, responses = TaskStore(database).get("worker", task.identifier)
    response = next(r for r in responses if r.endpoint == endpoint)
    return response.state, response.attempts, response.errmsg


def succeeded(task, payload) -> Finish:
    return Finish(task.id, 1, ResponseState.SUCCEEDED, 0, None, payload)


@pytest.mark.parametrize("over", [100, "2.5x"], ids=["just-over-1153", "far-over-connection-reset"])
def test_a_result_over_max_allowed_packet_is_refused_for_good_and_the_database_stays_usable(database, limit, over):
    size = limit + over if isinstance(over, int) else int(limit * 2.5)
    task = received_task(database)
    responses = ResponseStore(database)
    with pytest.raises(StatementTooLarge) as refused:
        responses.record([], [succeeded(task, "x" * size)], "e1")
    assert refused.value.limit == limit
    assert "over its max_allowed_packet of %d bytes" % limit in str(refused.value)
    assert state(database, task) == (ResponseState.RECEIVED, 1, None), "nothing of it was stored"
    responses.record([], [succeeded(task, "small")], "e1")
    assert state(database, task)[0] is ResponseState.SUCCEEDED


def test_a_result_just_under_max_allowed_packet_is_stored(database, limit):
    task = received_task(database)
    ResponseStore(database).record([], [succeeded(task, "x" * (limit - 10_000))], "e1")
    assert state(database, task)[0] is ResponseState.SUCCEEDED


@pytest.fixture
def manager_on_stub_broker(database):
    """A manager of `worker` on e1 with a stub broker and a stub work horse whose handler answers
    `"x" * payload["size"]`, recording to the real MariaDB; stopped at the end."""
    broker = StubBroker()
    horse = StubHorse(lambda job: Outcome(RunState.SUCCEEDED, 0, None, "x" * job.payload.value()["size"]))
    manager = Manager(
        lambda on_delivery: broker.consumer("worker", "e1", on_delivery),
        ResponseStore(database),
        horse,
        "worker",
        "e1",
        retry_delay=0.05,
    )
    thread = threading.Thread(target=manager.run, daemon=True)
    thread.start()
    yield broker, manager
    manager.shutdown()
    thread.join(30)
    assert not thread.is_alive(), "the manager did not stop"


def test_a_manager_records_a_run_whose_result_is_over_max_allowed_packet_as_failed_and_goes_on(
    database, limit, manager_on_stub_broker
):
    broker, manager = manager_on_stub_broker
    tasks = TaskStore(database)
    sizes = {"huge": limit + 1000, "fine": 10}
    created = {}
    for name, size in sizes.items():
        task = tasks.create(NewTask("worker", unique(name), {"size": size}, ["e1"]), 60).task
        tasks.mark_sent([task.id])
        broker.put("worker", "e1", encode_task(task, run=1))
        created[name] = task
    for name, expected in (("huge", ResponseState.FAILED), ("fine", ResponseState.SUCCEEDED)):
        task = created[name]
        wait_for(lambda task=task: state(database, task)[0].final, 60, 0.05, "%s to be final" % name)
        assert state(database, task)[0] is expected
    errmsg = "result too large for the database: %d bytes (max_allowed_packet is %d bytes)" % (limit + 1002, limit)
    assert state(database, created["huge"]) == (ResponseState.FAILED, 1, errmsg)
    wait_for(lambda: len(manager.consumer.acked) == 2, 10, 0.05, "both messages acknowledged")
    assert broker.depth("worker", "e1") == 0 and manager.consumer.unacked() == 0
