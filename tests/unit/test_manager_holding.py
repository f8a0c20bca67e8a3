"""The deliveries a manager holds: kept through a lost connection, renewed before the
consumer timeout, given back to the queue at a stop (the stub broker, a stub work horse,
SQLite)."""

from __future__ import annotations

import threading

from tests.helpers import wait_for
from tests.unit.stub_horse import StubHorse, gated


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
