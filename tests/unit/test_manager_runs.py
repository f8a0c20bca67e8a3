"""A delivery's way through the manager: performed and acknowledged once its outcome is
stored, or acknowledged unperformed, or dead-lettered; what extensions and the log see of a
run (the stub broker, a stub work horse, SQLite: milliseconds a test)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging

from sqlalchemy import update

from tasker.hooks import Extension, Hooks
from tasker.manager.workhorse import Outcome, RunOutput, RunState
from tasker.storage.models import RESPONSE
from tests.helpers import wait_for
from tests.unit.stub_horse import StubHorse


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


def test_a_message_that_is_not_a_task_or_not_for_this_endpoint_is_dead_lettered(setup):
    horse = StubHorse()
    setup.manager(horse)
    setup.broker.put("worker", "e1", b"\x80\x03}q\x00.")
    setup.send(setup.task(endpoints=("e2",)), endpoint="e1")
    wait_for(lambda: len(setup.broker.dead_letters) == 2, 5, 0.01, "two dead letters")
    assert horse.jobs == []


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
