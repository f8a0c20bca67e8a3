"""Runs whose manager died: brought back from the database or redelivered, each delivery an
attempt, failed after `max_crashes` (the stub broker, a stub work horse, SQLite)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import update

from tasker.status import ResponseState
from tasker.storage import Arrival, Start
from tasker.storage.models import RESPONSE
from tests.helpers import wait_for
from tests.unit.stub_horse import StubHorse


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


def test_the_renewal_copy_of_a_manager_that_died_counts_another_attempt(setup):
    task = setup.task()
    setup.responses.record_receipts([Arrival(task.id, 1, "worker")], "e1")  # the dead manager's receipt
    setup.send(task, renewal=True)  # its renewal copy, put back before it died
    horse = StubHorse()
    setup.manager(horse)
    setup.wait_state(task, "succeeded")
    assert setup.state(task) == ("succeeded", 2) and horse.jobs[0].attempts == 2


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
