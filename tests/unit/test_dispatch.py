"""The API's dispatcher on the stub broker and SQLite: send, the outbox, the deadline check, hooks."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import select, update

from tasker.api.dispatch import Dispatcher
from tasker.config import ApiConfig, DbConfig
from tasker.errors import BrokerUnavailable, QueueRefused
from tasker.hooks import Extension, Hooks
from tasker.messaging.stub import StubBroker, StubPublisher
from tasker.storage import NewTask, TaskStore, open_database
from tasker.storage.models import RESPONSE, TASK
from tasker.storage.outbox import Outgoing
from tests.helpers import unique


class Recorder(Extension):
    """Remembers which hooks were called, with what."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def task_created(self, task):
        self.calls.append(("task_created", task.identifier))

    def task_sent(self, task):
        self.calls.append(("task_sent", task.identifier))

    def deadline_passed(self, missed):
        self.calls.append(("deadline_passed", ",".join(missed.endpoints)))


@pytest.fixture
def world(tmp_path):
    database = open_database(DbConfig(uri="sqlite:///%s" % (tmp_path / "tasker.db")))
    database.upgrade_schema()
    broker, recorder = StubBroker(), Recorder()
    executor = ThreadPoolExecutor(2)
    tasks = TaskStore(database, claim_seconds=5)
    dispatcher = Dispatcher(ApiConfig(), tasks, broker.publisher(), executor, Hooks([recorder]))
    yield dispatcher, broker, recorder
    executor.shutdown()
    database.close()


def post(dispatcher, endpoints=("e1", "e2")):
    async def create_and_send():
        created = await dispatcher.create(NewTask("worker", unique(), {"n": 1}, list(endpoints)))
        return created.task, await dispatcher.send(Outgoing.first(created.task), created.claim_until)

    return asyncio.run(create_and_send())


def test_a_sent_task_reaches_only_the_queues_of_its_endpoints_once_each(world):
    dispatcher, broker, recorder = world
    task, status = post(dispatcher, ("e1", "e3"))
    assert status.value == "SENT"
    assert (broker.depth("worker", "e1"), broker.depth("worker", "e2"), broker.depth("worker", "e3")) == (1, 0, 1)
    endpoints, body = broker.published[0]
    message = json.loads(body)
    assert endpoints == ["e1", "e3"] and (message["run"], message["id"]) == (1, task.id)
    assert recorder.calls == [("task_created", task.identifier), ("task_sent", task.identifier)]
    assert dispatcher.tasks.get("worker", task.identifier)[0].status.value == "SENT"


def test_a_task_stored_while_the_broker_is_down_is_sent_by_the_outbox_once_it_is_back(world):
    dispatcher, broker, _ = world
    broker.down = True
    with pytest.raises(BrokerUnavailable):
        post(dispatcher)
    with dispatcher.tasks.database.connection() as connection:
        identifier = connection.execute(select(TASK.c.identifier)).scalar_one()
    asyncio.run(dispatcher.drain_outbox())
    assert broker.published == [] and dispatcher.tasks.get("worker", identifier)[0].status.value == "CREATED"
    broker.down = False
    asyncio.run(dispatcher.drain_outbox())
    assert len(broker.published) == 1
    assert dispatcher.tasks.get("worker", identifier)[0].status.value == "SENT"


def test_runs_not_received_by_their_deadline_are_missing_and_the_task_incomplete(world):
    dispatcher, _, recorder = world
    task, _ = post(dispatcher)
    past = dt.datetime(2020, 1, 1)
    with dispatcher.tasks.database.connection() as connection:
        connection.execute(update(TASK).where(TASK.c.id == task.id).values(deadline=past))
        connection.execute(
            update(RESPONSE).where(RESPONSE.c.task_id == task.id, RESPONSE.c.endpoint == "e2").values(deadline=past)
        )
    asyncio.run(dispatcher.check_deadlines())
    stored, responses = dispatcher.tasks.get("worker", task.identifier)
    assert stored.status.value == "INCOMPLETE"
    assert [(r.endpoint, r.state.value) for r in responses] == [("e1", "queued"), ("e2", "missing")]
    assert recorder.calls[-1] == ("deadline_passed", "e2")


def test_a_failing_extension_never_stops_a_task(world):
    dispatcher, broker, _ = world

    class Broken(Extension):
        def task_created(self, task):
            raise RuntimeError("extension bug")

    dispatcher.hooks.extensions.insert(0, Broken())
    _, status = post(dispatcher)
    assert status.value == "SENT" and len(broker.published) == 1


class SlowPublisher(StubPublisher):
    """A broker that takes `seconds` to confirm each publish."""

    def __init__(self, broker: StubBroker, seconds: float, confirm_timeout: float) -> None:
        super().__init__(broker)
        self.seconds = seconds
        self.confirm_timeout = confirm_timeout
        self.started: list[float] = []

    async def publish(self, *args, **kwargs) -> None:
        self.started.append(time.monotonic())
        await asyncio.sleep(self.seconds)
        await super().publish(*args, **kwargs)


def test_the_outbox_publishes_only_while_its_claim_outlasts_a_confirmation(tmp_path):
    """With a 2 s claim and up to 1 s per confirmation, no publish starts after 1 s: a task
    published later could be claimed and sent by another API meanwhile. The rest is released."""
    database = open_database(DbConfig(uri="sqlite:///%s" % (tmp_path / "tasker.db")))
    database.upgrade_schema()
    broker = StubBroker()
    publisher = SlowPublisher(broker, seconds=0.3, confirm_timeout=1.0)
    tasks = TaskStore(database, claim_seconds=2)
    with ThreadPoolExecutor(2) as executor:
        dispatcher = Dispatcher(ApiConfig(), tasks, publisher, executor)
        for _ in range(10):
            created = tasks.create(NewTask("worker", unique(), {"n": 1}, ["e1"]), 30)
            tasks.release([created.task.id], created.claim_until)
        started = time.monotonic()
        asyncio.run(dispatcher.drain_outbox())
    assert 2 <= len(publisher.started) <= 4
    assert all(moment - started <= 1.0 + 0.05 for moment in publisher.started), "none started past the claim's margin"
    with database.connection() as connection:
        rows = connection.execute(select(TASK.c.status, TASK.c.claim_until)).all()
    unsent = [claim for status, claim in rows if status == "CREATED"]
    assert len(unsent) == 10 - len(publisher.started) and unsent == [None] * len(unsent), "released for the next round"
    database.close()


class RefusingPublisher(StubPublisher):
    """A broker that refuses to declare the queue of endpoint `ghost`, as it does to an API
    user that may not create queues."""

    async def publish(self, task_type, endpoints, body, expiration=None) -> None:
        if "ghost" in endpoints:
            raise QueueRefused("the broker refused a declaration (access refused)")
        await super().publish(task_type, endpoints, body, expiration)


def test_a_task_whose_queue_the_broker_refuses_waits_and_holds_up_no_other(tmp_path):
    database = open_database(DbConfig(uri="sqlite:///%s" % (tmp_path / "tasker.db")))
    database.upgrade_schema()
    broker = StubBroker()
    tasks = TaskStore(database, claim_seconds=30)
    with ThreadPoolExecutor(2) as executor:
        dispatcher = Dispatcher(ApiConfig(), tasks, RefusingPublisher(broker), executor)
        ghost = tasks.create(NewTask("worker", unique(), {"n": 1}, ["ghost"]), 30)
        tasks.release([ghost.task.id], ghost.claim_until)
        fine = tasks.create(NewTask("worker", unique(), {"n": 2}, ["e1"]), 30)
        tasks.release([fine.task.id], fine.claim_until)
        asyncio.run(dispatcher.drain_outbox())
        assert [json.loads(body)["id"] for _, body in broker.published] == [fine.task.id], "the other went"
        assert tasks.get("worker", ghost.task.identifier)[0].status.value == "CREATED"
        assert ghost.task.id not in [o.task.id for o in tasks.claim_unsent().outgoing], "claimed until it runs out"
    database.close()
