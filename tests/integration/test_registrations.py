"""Registrations and heartbeats in the database: a beat registers or refreshes an endpoint, the
listing is sorted and filtered, and a max_concurrency slot held by a manager that stopped
heartbeating is free for another endpoint (MariaDB and SQLite)."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import update

from tasker.clock import utcnow
from tasker.lifecycle import StartVerdict
from tasker.status import ResponseState
from tasker.storage import Heartbeat, LimitStore, NewTask, RegistrationStore, TaskStore
from tasker.storage.models import REGISTRATION, RESPONSE
from tests.helpers import unique

pytestmark = pytest.mark.integration


def a_type() -> str:
    return unique("reg").replace("-", "_")[:40]


def test_a_beat_registers_an_endpoint_once_and_then_refreshes_what_its_manager_says(db):
    registrations, task_type = RegistrationStore(db), a_type()
    registrations.beat(task_type, "e1", Heartbeat("host1", 11, "1.0.0", None, None, 2.0))
    first = registrations.find(task_type, "e1")
    registrations.beat(task_type, "e1", Heartbeat("host1", 11, "1.0.0", "deploy-1", 4, 2.0))
    again = registrations.find(task_type, "e1")
    assert again.registered_time == first.registered_time and again.last_seen_time >= first.last_seen_time
    assert (again.host, again.pid, again.version, again.running, again.queued) == ("host1", 11, "1.0.0", "deploy-1", 4)
    assert again.heartbeat_interval == 2.0 and again.alive(utcnow()) is True
    assert registrations.find(task_type, "e2") is None


def test_the_listing_is_by_type_and_endpoint_and_filters_by_type(db):
    registrations, first, second = RegistrationStore(db), "a" + a_type(), "b" + a_type()
    for task_type, endpoint in ((second, "x"), (first, "m"), (first, "b"), (second, "a")):
        registrations.beat(task_type, endpoint)
    mine = [(r.type, r.endpoint) for r in registrations.listing() if r.type in (first, second)]
    assert mine == [(first, "b"), (first, "m"), (second, "a"), (second, "x")]
    assert [r.endpoint for r in registrations.listing(second)] == ["a", "x"]
    assert registrations.deregister(second, "a") and not registrations.deregister(second, "a")
    assert [r.endpoint for r in registrations.listing(second)] == ["x"]


def running_elsewhere(db, task_type: str) -> int:
    """A task with max_concurrency 1 on e1 and e2: e1 received its run, e2 runs it."""
    created = TaskStore(db).create(NewTask(task_type, unique(), {}, ["e1", "e2"], max_concurrency=1), 30).task
    with db.connection() as connection:
        for endpoint, state in (("e1", ResponseState.RECEIVED), ("e2", ResponseState.RUNNING)):
            where = (RESPONSE.c.task_id == created.id) & (RESPONSE.c.endpoint == endpoint)
            connection.execute(update(RESPONSE).where(where).values(state=state.value, attempts=1))
    return created.id


def seen(db, task_type: str, endpoint: str, seconds_ago: float, interval: float | None) -> None:
    RegistrationStore(db).beat(task_type, endpoint, Heartbeat(interval=interval))
    where = (REGISTRATION.c.type == task_type) & (REGISTRATION.c.endpoint == endpoint)
    with db.connection() as connection:
        last_seen = utcnow() - dt.timedelta(seconds=seconds_ago)
        connection.execute(update(REGISTRATION).where(where).values(last_seen_time=last_seen))


@pytest.mark.parametrize(
    "seconds_ago, interval, verdict",
    [
        (1, 10.0, StartVerdict.WAIT),  # alive: its run holds the slot
        (31, 10.0, StartVerdict.GO),  # three beats missed: gone, the slot is free
        (3600, None, StartVerdict.WAIT),  # a manager older than heartbeats: cannot be told, the slot stays
    ],
)
def test_a_slot_held_by_a_manager_that_stopped_heartbeating_is_free(db, seconds_ago, interval, verdict):
    task_type = a_type()
    task_id = running_elsewhere(db, task_type)
    seen(db, task_type, "e2", seconds_ago, interval)
    assert LimitStore(db).take_slot(task_id, "e1", 1) is verdict


def test_a_slot_held_by_an_endpoint_deregistered_since_is_free(db):
    task_type = a_type()
    task_id = running_elsewhere(db, task_type)
    assert LimitStore(db).take_slot(task_id, "e1", 1) is StartVerdict.GO, "e2 was never registered"
