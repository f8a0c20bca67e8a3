"""A manager's heartbeat: its registration says who it is, what it runs and how many runs wait
for it, comes back when deregistered under a living manager, and says it runs nothing once it
stopped cleanly (the stub broker, a stub work horse, SQLite)."""

from __future__ import annotations

import os
import socket
import threading

import tasker
from tasker.storage import RegistrationStore
from tests.helpers import wait_for
from tests.unit.stub_horse import StubHorse, gated

INTERVAL = 0.5  # below the steward's tick: a beat every tick


def beat_saying(registrations: RegistrationStore, what: str, **expected):
    """Wait for a beat of worker/e1 whose fields are `expected`; return its registration."""

    def said():
        found = registrations.find("worker", "e1")
        if found is not None and all(getattr(found, name) == value for name, value in expected.items()):
            return found
        return None

    return wait_for(said, 10, 0.05, what)


def test_a_manager_registers_saying_who_it_is_and_how_often_it_beats(setup, db):
    setup.manager(heartbeat_interval=INTERVAL)
    found = beat_saying(RegistrationStore(db), "the registration", running=None)
    assert (found.host, found.pid, found.version) == (socket.gethostname(), os.getpid(), tasker.__version__)
    assert found.heartbeat_interval == INTERVAL and found.registered_time <= found.last_seen_time


def test_a_beat_says_what_runs_and_how_many_runs_wait_behind_it(setup, db):
    gate = threading.Event()
    setup.manager(StubHorse(gated(gate)), heartbeat_interval=INTERVAL)
    registrations = RegistrationStore(db)
    beat_saying(registrations, "the registration")
    tasks = [setup.task() for _ in range(4)]
    setup.send(tasks[0])
    setup.wait_state(tasks[0], "running")
    for task in tasks[1:]:
        setup.send(task)
    beat_saying(registrations, "a beat with a backlog", running=tasks[0].identifier, queued=3)
    gate.set()
    for task in tasks:
        setup.wait_state(task, "succeeded")
    beat_saying(registrations, "an idle beat", running=None, queued=0)


def test_an_endpoint_deregistered_under_its_living_manager_is_registered_again_by_its_next_beat(setup, db):
    setup.manager(heartbeat_interval=INTERVAL)
    registrations = RegistrationStore(db)
    first = beat_saying(registrations, "the registration")
    assert registrations.deregister("worker", "e1")
    again = beat_saying(registrations, "a registration again")
    assert again.registered_time >= first.registered_time


def test_a_manager_stopped_cleanly_finishes_its_run_and_says_it_runs_nothing(setup, db):
    gate = threading.Event()
    manager = setup.manager(StubHorse(gated(gate)), heartbeat_interval=INTERVAL)
    registrations = RegistrationStore(db)
    task = setup.task()
    setup.send(task)
    beat_saying(registrations, "a beat while it runs", running=task.identifier)
    manager.shutdown()
    gate.set()
    setup.wait_state(task, "succeeded")
    (_, thread) = setup.running[-1]
    thread.join(10)
    assert not thread.is_alive(), "the manager did not stop"
    assert registrations.find("worker", "e1").running is None
