"""Every change of a task and of its runs is an event, written with the change, in order."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import func, select, update

from tasker.status import ResponseState
from tasker.storage import Arrival, Finish, NewTask, ResponseStore, Start, TaskStore
from tasker.storage.events import read_events, read_settled
from tasker.storage.live import Progress
from tasker.storage.models import EVENT, RESPONSE, TASK
from tasker.storage.operations import Operations
from tests.helpers import unique

pytestmark = pytest.mark.integration


def events_of(db, identifier):
    """(kind, what changed) of each event of the task, oldest first."""
    with db.connection() as connection:
        found = read_events(connection, 0, 1000, "worker", identifier)
    shown = []
    for event in found:
        data = json.loads(event.data)
        if event.kind == "task":
            shown.append(("task", data["status"], data["settled"]))
        else:
            shown.append((data["endpoint"], data["run"], data["state"], data["errnr"], data["progress"]))
    return shown


def test_a_task_s_life_is_told_by_its_events_in_order(db):
    tasks, responses, identifier = TaskStore(db), ResponseStore(db), unique("events")
    task = tasks.create(NewTask("worker", identifier, {"n": 1}, ["e1", "e2"]), 30).task
    tasks.mark_sent([task.id])
    tasks.mark_sent([task.id])  # a second confirmation changes nothing, and says nothing
    for endpoint in ("e1", "e2"):
        responses.record_receipts([Arrival(task.id, 1, "worker")], endpoint)
        responses.record([Start(task.id, 1, 4242)], [], endpoint)
    responses.record_live([Progress(task.id, 1, 50.0, "half")], [], "e1")
    responses.record([], [Finish(task.id, 1, ResponseState.SUCCEEDED, 0, None, {"ok": 1})], "e1")
    responses.record([], [Finish(task.id, 1, ResponseState.FAILED, 7, "no", None)], "e2")
    assert events_of(db, identifier) == [
        ("task", "CREATED", False),
        ("e1", 1, "queued", 0, None),
        ("e2", 1, "queued", 0, None),
        ("task", "SENT", False),
        ("e1", 1, "received", 0, None),
        ("e1", 1, "running", 0, None),
        ("e2", 1, "received", 0, None),
        ("e2", 1, "running", 0, None),
        ("e1", 1, "running", 0, 50.0),
        ("e1", 1, "succeeded", 0, 50.0),
        ("e2", 1, "failed", 7, None),
        ("task", "DONE", True),
    ]
    with db.connection() as connection:
        ids = [event.id for event in read_events(connection, 0, 1000, "worker", identifier)]
    assert ids == list(range(ids[0], ids[0] + len(ids))), "no gap a reader would have to wait out"


def test_retry_cancel_and_missed_deadlines_are_events_too(db):
    tasks, responses, operations = TaskStore(db), ResponseStore(db), Operations(db, 10)
    identifier = unique("events-ops")
    task = tasks.create(NewTask("worker", identifier, 1, ["e1", "e2"]), 30).task
    responses.record_receipts([Arrival(task.id, 1, "worker")], "e1")
    responses.record([], [Finish(task.id, 1, ResponseState.FAILED, 3, "no", None)], "e1")
    past = dt.datetime(2020, 1, 1)
    with db.connection() as connection:
        connection.execute(update(RESPONSE).where(RESPONSE.c.task_id == task.id).values(deadline=past))
    tasks.expire_overdue()
    operations.retry("worker", identifier, ["e1"], None, 30)
    operations.cancel("worker", identifier)
    assert events_of(db, identifier)[4:] == [
        ("e1", 1, "failed", 3, None),
        ("e2", 1, "missing", 1, None),
        ("task", "INCOMPLETE", True),
        ("e1", 2, "queued", 0, None),
        ("task", "CREATED", False),
        ("e1", 2, "skipped", 1, None),
        ("task", "CANCELLED", True),
    ]


def test_events_are_read_after_an_id_and_filtered_by_task(db):
    tasks = TaskStore(db)
    one, two = unique("one"), unique("two")
    tasks.create(NewTask("worker", one, 1, ["e1"]), 30)
    tasks.create(NewTask("worker", two, 1, ["e1"]), 30)
    with db.connection() as connection:
        newest = connection.execute(select(func.max(EVENT.c.id))).scalar()
        mine = read_events(connection, 0, 100, "worker", two)
        after = read_events(connection, newest - 1, 100)
        assert [json.loads(e.data)["identifier"] for e in mine] == [two, two]
        assert [e.id for e in after] == [newest]
        assert connection.execute(select(TASK.c.id).where(TASK.c.identifier == one)).scalar()


def test_a_reader_stops_at_a_gap_until_it_is_old_enough_to_be_a_rollback(db):
    tasks = TaskStore(db)
    tasks.create(NewTask("worker", unique("gap"), 1, ["e1"]), 30)
    with db.connection() as connection:
        newest = connection.execute(select(func.max(EVENT.c.id))).scalar()
    # Ids newest + 1 and + 2 are taken by a transaction not committed yet; + 3 is committed.
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    row = {"time": now, "kind": "task", "type": "worker", "identifier": "late", "data": "{}"}
    with db.connection() as connection:
        connection.execute(EVENT.insert(), [dict(row, id=newest + 3)])
    with db.connection() as connection:
        found, upto = read_settled(connection, newest - 1, 100, now)
        assert ([e.id for e in found], upto) == ([newest], newest), "not past the gap"
        found, upto = read_settled(connection, newest, 100, now + dt.timedelta(seconds=11))
        assert ([e.id for e in found], upto) == ([newest + 3], newest + 3), "the gap is a rollback by now"
        assert read_settled(connection, upto, 100, now) == ([], upto)
