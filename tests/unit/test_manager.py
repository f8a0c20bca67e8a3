"""The manager's logic on the stub broker, a stub work horse and SQLite: milliseconds a test."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import threading

import pytest
from sqlalchemy import update

from tasker.config import DbConfig
from tasker.errors import StatementTooLarge, StorageError, StorageUnavailable
from tasker.hooks import Extension, Hooks
from tasker.manager.manager import Manager
from tasker.manager.workhorse import Outcome, RunOutput, RunState
from tasker.messaging.message import encode_task
from tasker.messaging.stub import StubBroker
from tasker.status import ResponseState
from tasker.storage import Arrival, NewTask, ResponseStore, Start, TaskStore, open_database
from tasker.storage.models import RESPONSE
from tests.helpers import unique, wait_for
from tests.unit.stub_horse import StubHorse


@pytest.fixture
def db(tmp_path):
    database = open_database(DbConfig(uri="sqlite:///%s" % (tmp_path / "tasker.db")))
    database.upgrade_schema()
    yield database
    database.close()


class Setup:
    """A stub broker, storage on SQLite, and managers started on demand (stopped at the end)."""

    def __init__(self, db) -> None:
        self.db = db
        self.tasks = TaskStore(db)
        self.responses = ResponseStore(db)
        self.broker = StubBroker()
        self.running: list[tuple[Manager, threading.Thread]] = []

    def task(self, endpoints=("e1",), timeout=30, payload=None):
        task = self.tasks.create(NewTask("worker", unique(), payload or {"n": 1}, list(endpoints)), timeout).task
        self.tasks.mark_sent([task.id])
        return task

    def send(self, task, endpoint="e1", run=1, **options):
        self.broker.put("worker", endpoint, encode_task(task, run=run), **options)

    def manager(self, horse=None, endpoint="e1", responses=None, **options) -> Manager:
        options.setdefault("retry_delay", 0.05)
        manager = Manager(
            lambda on_delivery: self.broker.consumer("worker", endpoint, on_delivery),
            responses or self.responses,
            horse or StubHorse(),
            "worker",
            endpoint,
            **options,
        )
        thread = threading.Thread(target=manager.run, daemon=True)
        thread.start()
        self.running.append((manager, thread))
        return manager

    def state(self, task, endpoint="e1"):
        _, responses = self.tasks.get("worker", task.identifier)
        response = next(r for r in responses if r.endpoint == endpoint)
        return response.state.value, response.attempts

    def wait_state(self, task, state, endpoint="e1"):
        return wait_for(lambda: self.state(task, endpoint)[0] == state, 10, 0.01, "%s %s" % (task.identifier, state))

    def stop(self) -> None:
        for manager, thread in self.running:
            if thread.is_alive() and not manager.stopping:
                manager.shutdown()
            thread.join(10)
            assert not thread.is_alive(), "the manager did not stop"


@pytest.fixture
def setup(db):
    world = Setup(db)
    yield world
    world.stop()


def test_a_task_is_received_run_and_acknowledged_once_its_outcome_is_stored(setup):
    horse = StubHorse()
    manager = setup.manager(horse)
    task = setup.task()
    setup.send(task)
    setup.wait_state(task, "succeeded")
    status, responses = setup.tasks.get("worker", task.identifier)
    assert status.status.value == "DONE"
    assert responses[0].payload.value() == {"echo": {"n": 1}} and responses[0].attempts == 1
    wait_for(lambda: manager.consumer.acked, 5, 0.01, "the ack")
    assert manager.consumer.unacked() == 0 and len(horse.jobs) == 1
    assert (horse.jobs[0].run, horse.jobs[0].attempts, horse.jobs[0].endpoint) == (1, 1, "e1")


def test_a_task_reaching_the_manager_after_its_deadline_is_acknowledged_and_never_run(setup, db):
    horse = StubHorse()
    task = setup.task()
    with db.connection() as connection:
        past = dt.datetime(2020, 1, 1)
        connection.execute(update(RESPONSE).where(RESPONSE.c.task_id == task.id).values(deadline=past))
    manager = setup.manager(horse)
    setup.send(task)
    wait_for(lambda: manager.consumer.acked, 5, 0.01, "the ack")
    assert horse.jobs == [] and setup.state(task) == ("queued", 0)


def test_a_copy_of_a_run_performed_already_is_acknowledged_without_running_it_again(setup):
    horse = StubHorse()
    manager = setup.manager(horse)
    task = setup.task()
    setup.send(task)
    setup.wait_state(task, "succeeded")
    setup.send(task)
    wait_for(lambda: len(manager.consumer.acked) == 2, 5, 0.01, "both acks")
    assert len(horse.jobs) == 1 and setup.state(task) == ("succeeded", 1)


def test_a_message_of_another_run_is_acknowledged_unperformed(setup):
    horse = StubHorse()
    manager = setup.manager(horse)
    task = setup.task()
    setup.send(task, run=2)
    wait_for(lambda: manager.consumer.acked, 5, 0.01, "the ack")
    assert horse.jobs == [] and setup.state(task) == ("queued", 0)


def test_a_connection_lost_mid_run_runs_the_task_once_and_acknowledges_the_redelivered_copy(setup):
    gate = threading.Event()
    horse = StubHorse(gated(gate))
    manager = setup.manager(horse)
    task = setup.task()
    setup.send(task)
    setup.wait_state(task, "running")
    manager.consumer.lose_connection()
    wait_for(lambda: manager.consumer.unacked() == 1, 5, 0.01, "the redelivery")
    gate.set()
    setup.wait_state(task, "succeeded")
    wait_for(lambda: manager.consumer.unacked() == 0, 5, 0.01, "the redelivered copy acknowledged")
    assert len(horse.jobs) == 1 and setup.broker.depth("worker", "e1") == 0


def gated(gate):
    """A handler that returns once `gate` is set."""

    def handler(job):
        gate.wait(10)
        return Outcome(RunState.SUCCEEDED, 0, None, None)

    return handler


def test_a_long_run_is_renewed_before_the_consumer_timeout_and_stays_one_attempt(setup):
    gate = threading.Event()
    horse = StubHorse(gated(gate))
    manager = setup.manager(horse, consumer_timeout=2.0)  # renewed after 0.8 s
    task = setup.task()
    setup.send(task)
    setup.wait_state(task, "running")
    wait_for(lambda: len(manager.consumer.renewed) >= 2, 10, 0.05, "two renewals")
    assert manager.consumer.unacked() == 1, "the renewal copy is held in the original's place"
    gate.set()
    setup.wait_state(task, "succeeded")
    wait_for(lambda: manager.consumer.unacked() == 0, 5, 0.01, "the copy acknowledged")
    assert len(horse.jobs) == 1 and setup.state(task) == ("succeeded", 1)
    assert setup.broker.depth("worker", "e1") == 0


def test_a_received_run_whose_message_expired_is_brought_back_from_the_database(setup, db):
    task = setup.task()
    setup.responses.record_receipts([Arrival(task.id, 1, "worker")], "e1")
    with db.connection() as connection:
        past = dt.datetime(2020, 1, 1)
        connection.execute(update(RESPONSE).values(deadline=past, last_modified_time=past))
    horse = StubHorse()
    setup.manager(horse)
    setup.wait_state(task, "succeeded")
    assert setup.state(task) == ("succeeded", 2) and horse.jobs[0].attempts == 2


def test_a_message_that_is_not_a_task_or_not_for_this_endpoint_is_dead_lettered(setup):
    horse = StubHorse()
    setup.manager(horse)
    setup.broker.put("worker", "e1", b"\x80\x03}q\x00.")
    setup.send(setup.task(endpoints=("e2",)), endpoint="e1")
    wait_for(lambda: len(setup.broker.dead_letters) == 2, 5, 0.01, "two dead letters")
    assert horse.jobs == []


def test_a_first_stop_finishes_the_run_in_hand_and_leaves_the_waiting_ones_in_the_queue(setup):
    gate = threading.Event()
    horse = StubHorse(gated(gate))
    manager = setup.manager(horse)
    first, second = setup.task(), setup.task()
    setup.send(first)
    setup.send(second)
    setup.wait_state(first, "running")
    setup.wait_state(second, "received")
    manager.shutdown()
    gate.set()
    setup.stop()
    assert setup.state(first) == ("succeeded", 1) and setup.state(second) == ("received", 1)
    assert setup.broker.depth("worker", "e1") == 1, "the waiting task went back to the queue"
    assert horse.closed


class FlakyResponses(ResponseStore):
    """A response store whose database is down for its first `failures` calls of each kind."""

    def __init__(self, db, failures: int) -> None:
        super().__init__(db)
        self.failures = {"record_receipts": failures, "record": failures}

    def _flaky(self, name):
        if self.failures[name] > 0:
            self.failures[name] -= 1
            raise StorageUnavailable("database unavailable: stub outage")

    def record_receipts(self, arrivals, endpoint, max_crashes=None):
        self._flaky("record_receipts")
        return super().record_receipts(arrivals, endpoint, max_crashes)

    def record(self, starts, finishes, endpoint):
        self._flaky("record")
        return super().record(starts, finishes, endpoint)


def test_a_database_outage_delays_receipts_and_outcomes_and_loses_nothing(setup, db):
    horse = StubHorse()
    manager = setup.manager(horse, responses=FlakyResponses(db, failures=3))
    task = setup.task()
    setup.send(task)
    setup.wait_state(task, "succeeded")
    wait_for(lambda: manager.consumer.acked, 5, 0.01, "the ack")
    assert len(horse.jobs) == 1


def test_a_handler_process_that_cannot_start_fails_the_run(setup):
    class Broken(StubHorse):
        def begin(self, job):
            raise OSError("no more processes")

    setup.manager(Broken())
    task = setup.task()
    setup.send(task)
    setup.wait_state(task, "failed")
    _, responses = setup.tasks.get("worker", task.identifier)
    assert "cannot start the handler process: no more processes" in responses[0].errmsg


class Refusing(ResponseStore):
    """A response store whose database refuses for good any outcome with the payload "poison"."""

    def record(self, starts, finishes, endpoint):
        if any(finish.payload == "poison" for finish in finishes):
            raise StorageError("the database refused it: packet too large")
        return super().record(starts, finishes, endpoint)


def test_an_outcome_the_database_refuses_is_stored_as_a_failed_run_and_the_manager_goes_on(setup, db):
    horse = StubHorse(lambda job: Outcome(RunState.SUCCEEDED, 0, None, job.payload.value()["answer"]))
    manager = setup.manager(horse, responses=Refusing(db))
    poisoned, fine = setup.task(payload={"answer": "poison"}), setup.task(payload={"answer": "fine"})
    setup.send(poisoned)
    setup.send(fine)
    setup.wait_state(poisoned, "failed")
    setup.wait_state(fine, "succeeded")
    _, responses = setup.tasks.get("worker", poisoned.identifier)
    assert responses[0].errmsg == "cannot store the handler's result: the database refused it: packet too large"
    wait_for(lambda: len(manager.consumer.acked) == 2, 5, 0.01, "both acks")


def test_the_renewal_copy_of_a_manager_that_died_counts_another_attempt(setup):
    task = setup.task()
    setup.responses.record_receipts([Arrival(task.id, 1, "worker")], "e1")  # the dead manager's receipt
    setup.send(task, renewal=True)  # its renewal copy, put back before it died
    horse = StubHorse()
    setup.manager(horse)
    setup.wait_state(task, "succeeded")
    assert setup.state(task) == ("succeeded", 2) and horse.jobs[0].attempts == 2


def test_extensions_see_each_run_received_started_and_finished_and_may_change_it(setup):
    seen = []

    class Watcher(Extension):
        def run_received(self, job):
            seen.append(("received", job.identifier, job.attempts))

        def prepare_run(self, job):
            return dataclasses.replace(job, timeout=7.0)

        def run_started(self, job, pgid):
            seen.append(("started", job.identifier, job.timeout))

        def run_finished(self, job, outcome):
            seen.append(("finished", job.identifier, outcome.state.value))

    horse = StubHorse()
    setup.manager(horse, hooks=Hooks([Watcher()]))
    task = setup.task()
    setup.send(task)
    setup.wait_state(task, "succeeded")
    name = task.identifier
    assert seen == [("received", name, 1), ("started", name, 7.0), ("finished", name, "succeeded")]
    assert horse.jobs[0].timeout == 7.0


def test_a_refused_renewal_leaves_the_original_with_its_holder(setup):
    gate = threading.Event()
    horse = StubHorse(gated(gate))
    setup.broker.refuse_copies = True
    manager = setup.manager(horse, consumer_timeout=2.0)  # renewed after 0.8 s, refused each time
    task = setup.task()
    setup.send(task)
    setup.wait_state(task, "running")
    wait_for(lambda: len(manager.consumer.renewed) >= 2, 10, 0.05, "two refused renewals")
    assert manager.consumer.unacked() == 1, "the original is still held"
    gate.set()
    setup.wait_state(task, "succeeded")
    wait_for(lambda: manager.consumer.unacked() == 0 and len(manager.consumer.acked) == 1, 5, 0.01, "its ack")
    assert len(horse.jobs) == 1 and setup.state(task) == ("succeeded", 1)


class TooLarge(ResponseStore):
    """A database that is away until `back` is set, then refuses as too large any statement
    carrying a result of more than 100 bytes; remembers how many outcomes each write carried."""

    LIMIT = 100

    def __init__(self, db) -> None:
        super().__init__(db)
        self.back = threading.Event()
        self.batches: list[int] = []

    def record(self, starts, finishes, endpoint):
        if finishes and not self.back.is_set():
            raise StorageUnavailable("database unavailable: stub outage")
        self.batches.append(len(finishes))
        if any(len(json.dumps(finish.payload)) > self.LIMIT for finish in finishes):
            raise StatementTooLarge("the database refused a statement: over its max_allowed_packet", self.LIMIT)
        return super().record(starts, finishes, endpoint)


def test_a_result_too_large_for_the_database_fails_its_run_and_the_rest_of_its_batch_is_recorded(setup, db):
    horse = StubHorse(lambda job: Outcome(RunState.SUCCEEDED, 0, None, job.payload.value()["answer"]))
    store = TooLarge(db)
    manager = setup.manager(horse, responses=store)
    tasks = [setup.task(payload={"answer": answer}) for answer in ("fine", "x" * 1000, "fine too")]
    for task in tasks:
        setup.send(task)
    wait_for(lambda: len(manager.recorder.ended) == 3, 10, 0.01, "three outcomes waiting for the database")
    store.back.set()
    for task, state in zip(tasks, ("succeeded", "failed", "succeeded"), strict=True):
        setup.wait_state(task, state)
    assert store.batches[0] == 3, "the three outcomes went to the database as one batch first"
    _, responses = setup.tasks.get("worker", tasks[1].identifier)
    assert responses[0].errmsg == "result too large for the database: 1002 bytes (max_allowed_packet is 100 bytes)"
    assert responses[0].errnr == 1
    wait_for(lambda: len(manager.consumer.acked) == 3, 5, 0.01, "three acks")
    assert setup.broker.depth("worker", "e1") == 0 and manager.consumer.unacked() == 0


class Deadly(StubHorse):
    """A run that takes its manager down: collecting its outcome raises, as a fault of tasker's
    own would (the manager's steward stops, its deliveries go back to the queue)."""

    def collect(self):
        if super().collect() is not None:
            raise RuntimeError("the manager dies of this run")
        return None


def test_a_run_that_kills_its_manager_max_crashes_times_is_recorded_failed_and_not_run_again(setup):
    task = setup.task()
    setup.send(task)
    for attempt in (1, 2):
        deadly = Deadly()
        setup.manager(deadly, max_crashes=2)
        thread = setup.running[-1][1]
        wait_for(lambda thread=thread: not thread.is_alive(), 10, 0.01, "the manager to die of the run")
        # the first start waits to share a write (and died with its manager); a run delivered
        # again is recorded running at once
        assert setup.state(task) == (("received", 1), ("running", 2))[attempt - 1] and len(deadly.jobs) == 1
        assert setup.broker.depth("worker", "e1") == 1, "the message is back in the queue"
    horse = StubHorse()
    manager = setup.manager(horse, max_crashes=2)
    setup.wait_state(task, "failed")
    status, responses = setup.tasks.get("worker", task.identifier)
    assert responses[0].errmsg == "the run's manager stopped 2 times while holding it (manager.max_crashes)"
    assert (responses[0].attempts, responses[0].errnr, status.status.value) == (3, 1, "DONE")
    wait_for(lambda: manager.consumer.acked, 5, 0.01, "the ack")
    assert horse.jobs == [] and setup.broker.depth("worker", "e1") == 0 and manager.consumer.unacked() == 0
    after = setup.task()
    setup.send(after)
    setup.wait_state(after, "succeeded")
    assert not manager.stopping and [job.task_id for job in horse.jobs] == [after.id]


def test_a_run_brought_back_from_the_database_after_max_crashes_is_recorded_failed_not_run(setup, db):
    task = setup.task()
    for _ in range(2):  # two managers started it and died holding it, past its deadline
        setup.responses.record_receipts([Arrival(task.id, 1, "worker")], "e1")
        setup.responses.record([Start(task.id, 1, None)], [], "e1")
    with db.connection() as connection:
        past = dt.datetime(2020, 1, 1)
        connection.execute(update(RESPONSE).values(deadline=past, last_modified_time=past))
    horse = StubHorse()
    setup.manager(horse, max_crashes=2)
    setup.wait_state(task, "failed")
    _, responses = setup.tasks.get("worker", task.identifier)
    assert (responses[0].state, responses[0].attempts) == (ResponseState.FAILED, 3) and horse.jobs == []
    assert responses[0].errmsg == "the run's manager stopped 2 times while holding it (manager.max_crashes)"


def test_a_run_redelivered_fewer_than_max_crashes_times_is_performed(setup):
    task = setup.task()
    for _ in range(2):
        setup.responses.record_receipts([Arrival(task.id, 1, "worker")], "e1")
    setup.send(task)
    horse = StubHorse()
    setup.manager(horse, max_crashes=3)
    setup.wait_state(task, "succeeded")
    assert setup.state(task) == ("succeeded", 3) and horse.jobs[0].attempts == 3


def test_the_managers_log_shows_the_last_of_a_runs_output(setup, caplog):
    output = RunOutput("early line\n" + "x" * 3000 + "\nlast line\n", 3021, False)
    setup.manager(StubHorse(lambda job: Outcome(RunState.SUCCEEDED, 0, None, None, output)))
    task = setup.task()
    with caplog.at_level(logging.INFO, logger="tasker.manager.manager"):
        setup.send(task)
        setup.wait_state(task, "succeeded")
    (logged,) = [r.getMessage() for r in caplog.records if "bytes of output" in r.getMessage()]
    assert "wrote 3021 bytes of output" in logged and logged.endswith("x\nlast line")
    assert "early line" not in logged, "the last 2,000 characters only"
