"""Storage against the real MariaDB (and SQLite): retries, receipts, DONE and the deadline."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from sqlalchemy import update

from tasker.config import DbConfig
from tasker.errors import InvalidTask, StorageError, StorageUnavailable, TaskConflict, TaskNotFound
from tasker.storage import Receipt, ResponseStore, TaskStore, open_database
from tasker.storage.models import Task
from tasker.storage.tasks import NewTask
from tests.helpers import unique

pytestmark = pytest.mark.integration


@pytest.fixture(params=["mariadb", "sqlite"])
def db(request, tmp_path):
    if request.param == "mariadb":
        yield request.getfixturevalue("database")
        return
    sqlite = open_database(DbConfig(uri="sqlite:///%s" % (tmp_path / "tasker.db")))
    sqlite.upgrade_schema()
    yield sqlite
    sqlite.close()


def new(endpoints=("e1", "e2"), payload=None, identifier=None):
    return NewTask("worker", identifier or unique(), payload or {"n": 1}, list(endpoints) if endpoints else None)


def backdate(db, task_id):
    """Move the task's delivery deadline into the past."""
    past = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) - dt.timedelta(seconds=60)
    with db.transaction() as session:
        session.execute(update(Task).where(Task.id == task_id).values(deadline=past))


def test_a_retry_with_the_same_content_returns_the_stored_task_and_other_content_conflicts(db):
    tasks = TaskStore(db)
    first = tasks.create(new(identifier="same"), 30)
    again = tasks.create(new(identifier="same"), 30)
    assert first.created and not again.created
    assert again.task["id"] == first.task["id"]
    assert tasks.create(NewTask("worker", "same", {"n": 1}, None), 30).created is False
    with pytest.raises(TaskConflict):
        tasks.create(new(identifier="same", payload={"n": 2}), 30)
    with pytest.raises(TaskConflict):
        tasks.create(new(identifier="same", endpoints=["e1"]), 30)
    assert tasks.create(NewTask("backup", "same", {"n": 1}, ["e1"]), 30).created, "unique per type only"


def test_a_task_without_endpoints_goes_to_the_registered_ones(db):
    tasks, responses = TaskStore(db), ResponseStore(db)
    with pytest.raises(InvalidTask, match="no endpoint is registered"):
        tasks.create(NewTask("nobody", unique(), "", None), 30)
    responses.register("nobody", "b-host")
    responses.register("nobody", "a-host")
    responses.register("nobody", "a-host")
    assert tasks.create(NewTask("nobody", unique(), "", None), 30).task["endpoints"] == ["a-host", "b-host"]


def test_each_endpoint_records_once_and_the_last_one_makes_the_task_done(db):
    tasks, responses = TaskStore(db), ResponseStore(db)
    task = tasks.create(new(), 30).task
    tasks.mark_sent([task["id"]])
    assert tasks.get("worker", task["identifier"])["task"]["status"] == "SENT"
    assert responses.record_receipt(task["id"], "e1") == (Receipt.RUN, 1)
    assert responses.record_receipt(task["id"], "e1") == (Receipt.RUN, 2), "a redelivery counts an attempt"
    assert responses.record_result(task["id"], "e1", 0, None, {"ok": 1}) == "SENT"
    assert responses.record_receipt(task["id"], "e1") == (Receipt.FINISHED, 2)
    assert responses.record_receipt(task["id"], "e2") == (Receipt.RUN, 1)
    assert responses.record_result(task["id"], "e2", 32, "could not backup!", None) == "DONE"
    read = tasks.get("worker", task["identifier"])
    assert read["task"]["status"] == "DONE"
    assert [(r["endpoint"], r["status"], r["errnr"], r["attempts"]) for r in read["taskResponseList"]] == [
        ("e1", 1, 0, 2),
        ("e2", 1, 32, 1),
    ]


def test_an_endpoint_that_missed_the_deadline_makes_the_task_incomplete_and_never_starts_it(db):
    tasks, responses = TaskStore(db), ResponseStore(db)
    task = tasks.create(new(), 30).task
    tasks.mark_sent([task["id"]])
    assert responses.record_receipt(task["id"], "e1")[0] is Receipt.RUN
    backdate(db, task["id"])
    assert responses.record_receipt(task["id"], "e2")[0] is Receipt.STALE
    expired = [t for t in tasks.expire_overdue() if t["id"] == task["id"]]
    assert expired and expired[0]["missing"] == ["e2"] and expired[0]["status"] == "INCOMPLETE"
    assert tasks.expire_overdue() == [] or task["id"] not in [t["id"] for t in tasks.expire_overdue()]
    assert responses.record_result(task["id"], "e1", 0, None, "late but kept") == "INCOMPLETE"
    read = tasks.get("worker", task["identifier"])
    assert read["task"]["status"] == "INCOMPLETE"
    assert [(r["endpoint"], r["payload"]) for r in read["taskResponseList"]] == [("e1", "late but kept")]


def test_a_task_every_endpoint_received_is_not_incomplete_however_long_it_runs(db):
    tasks, responses = TaskStore(db), ResponseStore(db)
    task = tasks.create(new(), 30).task
    for endpoint in ("e1", "e2"):
        responses.record_receipt(task["id"], endpoint)
    backdate(db, task["id"])
    assert task["id"] not in [t["id"] for t in tasks.expire_overdue()]
    assert tasks.get("worker", task["identifier"])["task"]["status"] == "CREATED"


def test_only_one_caller_claims_an_unsent_task(db):
    tasks = TaskStore(db, claim_seconds=30)
    task = tasks.create(new(), 30).task
    assert task["id"] not in [t["id"] for t in tasks.claim_unsent()], "its creator holds the claim"
    tasks.release([task["id"]])
    won: list[int] = []
    barrier = threading.Barrier(4)

    def claim():
        barrier.wait()
        won.extend(t["id"] for t in tasks.claim_unsent() if t["id"] == task["id"])

    threads = [threading.Thread(target=claim) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert won == [task["id"]]


def test_an_unknown_task_is_not_found(db):
    with pytest.raises(TaskNotFound):
        TaskStore(db).get("worker", "never-created")
    assert ResponseStore(db).record_receipt(10**9, "e1") == (Receipt.UNKNOWN, 0)


def test_an_unreachable_database_is_storage_unavailable():
    nowhere = open_database(DbConfig(uri="mysql+pymysql://tasker:x@127.0.0.1:1/tasker"))
    with pytest.raises(StorageUnavailable, match="database unavailable"):
        TaskStore(nowhere).get("worker", "x")


def test_identifiers_and_endpoints_differ_by_case(db):
    tasks, responses = TaskStore(db), ResponseStore(db)
    name = unique("Case")
    upper = tasks.create(new(identifier=name.upper(), endpoints=["Console1", "console1"]), 30).task
    lower = tasks.create(new(identifier=name.lower()), 30).task
    assert upper["id"] != lower["id"]
    assert tasks.get("worker", name.upper())["task"]["id"] == upper["id"]
    for endpoint in ("Console1", "console1"):
        assert responses.record_receipt(upper["id"], endpoint) == (Receipt.RUN, 1)
    responses.record_result(upper["id"], "Console1", 0, None, None)
    assert responses.record_result(upper["id"], "console1", 0, None, None) == "DONE"


def test_a_retry_may_list_the_endpoints_in_another_order(db):
    tasks = TaskStore(db)
    first = tasks.create(new(identifier=unique(), endpoints=["e1", "e2"]), 30)
    again = tasks.create(NewTask("worker", first.task["identifier"], {"n": 1}, ["e2", "e1"]), 30)
    assert not again.created and again.task["id"] == first.task["id"]


def test_a_result_mariadb_cannot_hold_is_a_storage_error_not_a_library_error(database):
    tasks, responses = TaskStore(database), ResponseStore(database)
    task = tasks.create(new(), 30).task
    responses.record_receipt(task["id"], "e1")
    with pytest.raises(StorageError):
        responses.record_result(task["id"], "e1", 2**40, None, None)


def test_many_tasks_are_created_in_one_call_each_with_its_own_outcome(db):
    tasks = TaskStore(db)
    stored = tasks.create(new(identifier=unique("stored")), 30).task
    again = NewTask("worker", stored["identifier"], {"n": 1}, ["e1", "e2"])
    clash = NewTask("worker", stored["identifier"], {"n": 2}, ["e1", "e2"])
    twin = new(identifier=unique("twin"))
    results = tasks.create_many([new(), again, clash, twin, twin, NewTask("nobody2", unique(), "", None)], 30)
    assert results[0].created and results[0].task["id"]
    assert not results[1].created and results[1].task["id"] == stored["id"]
    assert isinstance(results[2], TaskConflict)
    assert results[3].created and not results[4].created and results[3].task["id"] == results[4].task["id"]
    assert isinstance(results[5], InvalidTask)


def test_a_batch_of_new_tasks_is_inserted_in_one_go_with_ids_in_order(db):
    tasks = TaskStore(db)
    news = [new(identifier=unique("fast"), payload={"n": n}) for n in range(50)]
    results = tasks.create_many(news, 30)
    assert all(r.created for r in results)
    assert [r.task["identifier"] for r in results] == [n.identifier for n in news]
    ids = [r.task["id"] for r in results]
    assert len(set(ids)) == 50
    for result in results[::7]:
        assert tasks.get("worker", result.task["identifier"])["task"]["id"] == result.task["id"]


def test_a_task_the_database_refuses_fails_alone_in_its_batch(database):
    tasks = TaskStore(database)
    fine, huge = new(identifier=unique("fine")), NewTask("worker", unique("huge"), "x" * 70_000, ["e" * 50] * 1400)
    results = tasks.create_many([fine, huge], 30)
    assert results[0].created
    assert isinstance(results[1], StorageError)
