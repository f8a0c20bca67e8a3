"""Reading the fleet's figures for /metrics (tasker.storage.fleet), on MariaDB and SQLite: rows
of a task type of the test's own, so other tests' rows do not count."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from sqlalchemy import delete, insert

from tasker.clock import utcnow
from tasker.status import ResponseState, TaskStatus
from tasker.storage.fleet import read_fleet
from tasker.storage.models import REGISTRATION, RESPONSE, TASK

pytestmark = pytest.mark.integration
WINDOW = 60.0


@pytest.fixture
def now() -> dt.datetime:
    return utcnow()


@pytest.fixture
def kind(db):
    """A task type nobody else uses; its rows are deleted afterwards."""
    name = "fleet_" + uuid.uuid4().hex[:12]
    yield name
    with db.connection() as connection:
        connection.execute(delete(REGISTRATION).where(REGISTRATION.c.type == name))
        connection.execute(delete(TASK).where(TASK.c.type == name))


def ago(now: dt.datetime, seconds: float) -> dt.datetime:
    return now - dt.timedelta(seconds=seconds)


def add_task(db, kind: str, status: TaskStatus, started: dt.datetime, modified: dt.datetime, runs=()) -> int:
    """A task and its responses: `runs` are (state, received, last modified, deadline)."""
    row = {
        "identifier": uuid.uuid4().hex,
        "type": kind,
        "payload": '""',
        "endpoints": "[]",
        "status": status.value,
        "start_time": started,
        "last_modified_time": modified,
        "deadline": started + dt.timedelta(seconds=30),
    }
    with db.connection() as connection:
        task_id = connection.execute(insert(TASK).values(row)).inserted_primary_key[0]
        for number, (state, received, last, deadline) in enumerate(runs):
            connection.execute(
                insert(RESPONSE).values(
                    task_id=task_id,
                    endpoint="e%d" % number,
                    status=0,
                    errnr=0,
                    attempts=1,
                    start_time=received,
                    last_modified_time=last,
                    state=state.value,
                    run=1,
                    deadline=deadline,
                )
            )
    return task_id


def register(db, kind: str, endpoint: str, seen: dt.datetime, interval: float | None, **heartbeat) -> None:
    values = dict(type=kind, endpoint=endpoint, registered_time=seen, last_seen_time=seen, heartbeat_interval=interval)
    with db.connection() as connection:
        connection.execute(insert(REGISTRATION).values(dict(values, **heartbeat)))


def test_tasks_in_flight_count_whole_and_settled_ones_within_the_window(db, kind, now):
    for seconds in (30, 10):
        add_task(db, kind, TaskStatus.CREATED, ago(now, seconds), ago(now, seconds))
    add_task(db, kind, TaskStatus.SENT, ago(now, 7200), ago(now, 7200))  # in flight however old
    add_task(db, kind, TaskStatus.DONE, ago(now, 20), ago(now, 10))
    add_task(db, kind, TaskStatus.DONE, ago(now, 20), ago(now, 59))
    add_task(db, kind, TaskStatus.DONE, ago(now, 7200), ago(now, 3600))  # settled long ago: not counted
    add_task(db, kind, TaskStatus.INCOMPLETE, ago(now, 40), ago(now, 5))

    fleet = read_fleet(db, now, WINDOW)
    created, sent = fleet.tasks_in_flight[(kind, TaskStatus.CREATED)], fleet.tasks_in_flight[(kind, TaskStatus.SENT)]
    assert (created.count, created.earliest, sent.count) == (2, ago(now, 30), 1)
    mine = {status: count for (k, status), count in fleet.tasks_settled.items() if k == kind}
    assert mine == {TaskStatus.DONE: 2, TaskStatus.INCOMPLETE: 1}


def test_open_runs_count_whole_and_finished_ones_within_the_window_with_their_durations(db, kind, now):
    runs = [
        (ResponseState.QUEUED, ago(now, 50), ago(now, 50), ago(now, 5)),
        (ResponseState.QUEUED, ago(now, 50), ago(now, 50), ago(now, -20)),
        (ResponseState.RUNNING, ago(now, 40), ago(now, 30), ago(now, 20)),
    ]
    add_task(db, kind, TaskStatus.SENT, ago(now, 50), ago(now, 50), runs)
    finished = [
        (ResponseState.SUCCEEDED, ago(now, 15), ago(now, 10), ago(now, 20)),
        (ResponseState.FAILED, ago(now, 20), ago(now, 10), ago(now, 20)),
        (ResponseState.SKIPPED, ago(now, 20), ago(now, 10), ago(now, 20)),
        (ResponseState.SUCCEEDED, ago(now, 4000), ago(now, 3000), ago(now, 4000)),  # long ago: not counted
    ]
    add_task(db, kind, TaskStatus.DONE, ago(now, 30), ago(now, 10), finished)

    fleet = read_fleet(db, now, WINDOW)
    queued, running = fleet.runs_open[(kind, ResponseState.QUEUED)], fleet.runs_open[(kind, ResponseState.RUNNING)]
    assert (queued.count, queued.earliest, running.count) == (2, ago(now, 5), 1)
    mine = {state: count for (k, state), count in fleet.runs_finished.items() if k == kind}
    assert mine == {ResponseState.SUCCEEDED: 1, ResponseState.FAILED: 1, ResponseState.SKIPPED: 1}
    assert fleet.durations[kind] == {5: 1, 10: 1}  # a skipped run never ran: no duration


def test_every_registration_comes_with_its_heartbeat(db, kind, now):
    register(db, kind, "beating", ago(now, 1), 2.0, queued=4, running="t-1")
    register(db, kind, "stale", ago(now, 100), 2.0, queued=0)
    register(db, kind, "legacy", ago(now, 100), None)

    mine = {r.endpoint: r for r in read_fleet(db, now, WINDOW).endpoints if r.type == kind}
    assert {name: r.alive(now) for name, r in mine.items()} == {"beating": True, "stale": False, "legacy": None}
    assert (mine["beating"].queued, mine["beating"].running) == (4, "t-1")
