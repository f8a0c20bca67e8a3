"""Recording receipts and outcomes: through a database outage, and an outcome the database
refuses for good (the stub broker, a stub work horse, SQLite)."""

from __future__ import annotations

import json
import threading

from tasker.errors import StatementTooLarge, StorageError, StorageUnavailable
from tasker.manager.workhorse import Outcome, RunState
from tasker.storage import ResponseStore
from tests.helpers import wait_for
from tests.unit.stub_horse import StubHorse


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
