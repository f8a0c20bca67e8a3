"""The manager's world in unit tests: a stub broker, storage on SQLite, and managers started on
demand, each running a stub work horse unless given another."""

from __future__ import annotations

import threading

from tasker.manager.manager import Manager
from tasker.messaging.message import encode_task
from tasker.messaging.stub import StubBroker
from tasker.storage import NewTask, ResponseStore, TaskStore
from tests.helpers import unique, wait_for
from tests.unit.stub_horse import StubHorse


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
