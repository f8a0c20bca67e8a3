"""Storage against the real MariaDB (and SQLite): retries, receipts, DONE and the deadline."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from sqlalchemy import select, update

from tasker.config import DbConfig
from tasker.errors import InvalidTask, StorageError, StorageUnavailable, TaskConflict, TaskNotFound
from tasker.lifecycle import Receipt
from tasker.status import ResponseState
from tasker.storage import Arrival, Finish, NewTask, RegistrationStore, ResponseStore, Start, TaskStore, open_database
from tasker.storage.models import RESPONSE, TASK
from tests.helpers import unique, wait_for

pytestmark = pytest.mark.integration


def new(endpoints=("e1", "e2"), payload=None, identifier=None):
    return NewTask("worker", identifier or unique(), payload or {"n": 1}, list(endpoints) if endpoints else None)


def backdate(db, task_id):
    """Move the task's delivery deadline, and its responses', into the past."""
    past = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) - dt.timedelta(seconds=60)
    with db.connection() as connection:
        connection.execute(update(TASK).where(TASK.c.id == task_id).values(deadline=past))
        connection.execute(update(RESPONSE).where(RESPONSE.c.task_id == task_id).values(deadline=past))


def receipt(responses, task_id, endpoint, run=1, task_type="worker"):
    """Record one receipt; (what to do, attempts)."""
    decision, _ = responses.record_receipts([Arrival(task_id, run, task_type)], endpoint)[0]
    return decision.receipt, decision.attempts


def finish(responses, task_id, endpoint, errnr, errmsg, payload, run=1):
    """Record one outcome; the task's status afterwards."""
    state = ResponseState.SUCCEEDED if errnr == 0 else ResponseState.FAILED
    return responses.record([], [Finish(task_id, run, state, errnr, errmsg, payload)], endpoint)[task_id].value


def states(tasks, identifier):
    task, responses = tasks.get("worker", identifier)
    return task.status.value, [(r.endpoint, r.state.value, r.attempts) for r in responses]


def test_a_retry_with_the_same_content_returns_the_stored_task_and_other_content_conflicts(db):
    tasks = TaskStore(db)
    first = tasks.create(new(identifier="same"), 30)
    again = tasks.create(new(identifier="same"), 30)
    assert first.created and not again.created
    assert again.task.id == first.task.id
    assert tasks.create(NewTask("worker", "same", {"n": 1}, None), 30).created is False
    with pytest.raises(TaskConflict):
        tasks.create(new(identifier="same", payload={"n": 2}), 30)
    with pytest.raises(TaskConflict):
        tasks.create(new(identifier="same", endpoints=["e1"]), 30)
    assert tasks.create(NewTask("backup", "same", {"n": 1}, ["e1"]), 30).created, "unique per type only"


def test_a_task_without_endpoints_goes_to_the_registered_ones(db):
    tasks, registrations = TaskStore(db), RegistrationStore(db)
    with pytest.raises(InvalidTask, match="no endpoint is registered"):
        tasks.create(NewTask("nobody", unique(), "", None), 30)
    registrations.beat("nobody", "b-host")
    registrations.beat("nobody", "a-host")
    registrations.beat("nobody", "a-host")
    assert tasks.create(NewTask("nobody", unique(), "", None), 30).task.endpoints == ("a-host", "b-host")


def test_more_registered_endpoints_than_a_task_may_name_is_a_clear_refusal(db):
    tasks, registrations = TaskStore(db, max_endpoints=2), RegistrationStore(db)
    task_type = unique("crowd").replace("-", "_")[:40]
    for endpoint in ("a1", "a2", "a3"):
        registrations.beat(task_type, endpoint)
    with pytest.raises(InvalidTask, match="3 endpoints are registered .* more than a task may go to"):
        tasks.create(NewTask(task_type, unique(), "", None), 30)
    assert tasks.create(NewTask(task_type, unique(), "", ["a1", "a2"]), 30).created


def test_every_endpoint_has_a_queued_response_from_the_start(db):
    tasks = TaskStore(db)
    task = tasks.create(new(), 30).task
    status, responses = states(tasks, task.identifier)
    assert status == "CREATED"
    assert responses == [("e1", "queued", 0), ("e2", "queued", 0)]
    _, rows = tasks.get("worker", task.identifier)
    assert all(r.run == 1 and r.deadline == task.deadline and r.view()["status"] == 0 for r in rows)


def test_each_endpoint_records_once_and_the_last_one_makes_the_task_done(db):
    tasks, responses = TaskStore(db), ResponseStore(db)
    task = tasks.create(new(), 30).task
    tasks.mark_sent([task.id])
    assert states(tasks, task.identifier)[0] == "SENT"
    assert receipt(responses, task.id, "e1") == (Receipt.RUN, 1)
    assert receipt(responses, task.id, "e1") == (Receipt.RUN, 2), "a redelivery counts an attempt"
    responses.record([Start(task.id, 1, 4242)], [], "e1")
    assert states(tasks, task.identifier)[1][0] == ("e1", "running", 2)
    assert finish(responses, task.id, "e1", 0, None, {"ok": 1}) == "SENT"
    assert receipt(responses, task.id, "e1") == (Receipt.FINISHED, 2)
    assert receipt(responses, task.id, "e2") == (Receipt.RUN, 1)
    assert finish(responses, task.id, "e2", 32, "could not backup!", None) == "DONE"
    task_after, rows = tasks.get("worker", task.identifier)
    assert task_after.status.value == "DONE"
    assert [(r.endpoint, r.view()["status"], r.errnr, r.attempts, r.state.value) for r in rows] == [
        ("e1", 1, 0, 2, "succeeded"),
        ("e2", 1, 32, 1, "failed"),
    ]


def test_an_outcome_of_a_run_that_is_not_current_is_not_stored(db):
    tasks, responses = TaskStore(db), ResponseStore(db)
    task = tasks.create(new(endpoints=["e1"]), 30).task
    receipt(responses, task.id, "e1")
    assert receipt(responses, task.id, "e1", run=2)[0] is Receipt.OTHER_RUN
    assert finish(responses, task.id, "e1", 0, None, "wrong run", run=2) == "CREATED"
    assert states(tasks, task.identifier)[1] == [("e1", "received", 1)]


def test_an_endpoint_that_missed_the_deadline_is_missing_and_the_task_incomplete_while_others_run_on(db):
    tasks, responses = TaskStore(db), ResponseStore(db)
    task = tasks.create(new(), 30).task
    tasks.mark_sent([task.id])
    assert receipt(responses, task.id, "e1")[0] is Receipt.RUN
    backdate(db, task.id)
    assert receipt(responses, task.id, "e2")[0] is Receipt.STALE
    missed = [m for m in tasks.expire_overdue() if m.task.id == task.id]
    assert missed and missed[0].endpoints == ["e2"] and missed[0].task.status.value == "INCOMPLETE"
    assert task.id not in [m.task.id for m in tasks.expire_overdue()]
    assert receipt(responses, task.id, "e2")[0] is Receipt.FINISHED, "a missing run never starts"
    assert finish(responses, task.id, "e1", 0, None, "late but kept") == "INCOMPLETE"
    task_after, rows = tasks.get("worker", task.identifier)
    assert task_after.status.value == "INCOMPLETE"
    assert [(r.endpoint, r.state.value, r.payload and r.payload.value(), r.errnr) for r in rows] == [
        ("e1", "succeeded", "late but kept", 0),
        ("e2", "missing", None, 1),
    ]


def test_a_task_every_endpoint_received_is_not_incomplete_however_long_it_runs(db):
    tasks, responses = TaskStore(db), ResponseStore(db)
    task = tasks.create(new(), 30).task
    for endpoint in ("e1", "e2"):
        receipt(responses, task.id, endpoint)
    backdate(db, task.id)
    assert task.id not in [m.task.id for m in tasks.expire_overdue()]
    assert states(tasks, task.identifier)[0] == "CREATED"


def test_runs_received_and_unfinished_past_their_deadline_are_orphans_of_their_endpoint(db):
    tasks, responses = TaskStore(db), ResponseStore(db)
    task = tasks.create(new(), 30).task
    receipt(responses, task.id, "e1")
    responses.record([Start(task.id, 1, 999_999)], [], "e1")
    receipt(responses, task.id, "e2")
    later = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) + dt.timedelta(seconds=5)
    assert task.id not in [o.task.id for o in responses.orphans("worker", "e1", later)], "deadline not passed"
    backdate(db, task.id)
    orphans = [o for o in responses.orphans("worker", "e1", later) if o.task.id == task.id]
    assert [(o.run, o.attempts, o.pgid, o.task.payload.value()) for o in orphans] == [(1, 2, 999_999, {"n": 1})]
    assert task.id not in [o.task.id for o in responses.orphans("worker", "e1", later - dt.timedelta(seconds=60))]


def test_only_one_caller_claims_an_unsent_task(db):
    tasks = TaskStore(db, claim_seconds=30)
    created = tasks.create(new(), 30)
    task = created.task
    assert task.id not in [o.task.id for o in tasks.claim_unsent().outgoing], "its creator holds the claim"
    tasks.release([task.id], created.claim_until)
    won: list[int] = []
    barrier = threading.Barrier(4)

    def claim():
        barrier.wait()
        won.extend(o.task.id for o in tasks.claim_unsent().outgoing if o.task.id == task.id)

    threads = [threading.Thread(target=claim) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert won == [task.id]


def test_a_release_gives_up_only_the_callers_own_claim(db):
    """An API whose claim ran out while it published must not free the task another API took
    over since: a third one would send it again."""
    slow, other, third = TaskStore(db, claim_seconds=1), TaskStore(db, claim_seconds=30), TaskStore(db)
    created = slow.create(new(), 30)

    def taken_over():
        claim = other.claim_unsent()
        return claim if created.task.id in [o.task.id for o in claim.outgoing] else None

    claim = wait_for(taken_over, 10, 0.1, "the other API's claim once the first ran out")
    slow.release([created.task.id], created.claim_until)
    assert created.task.id not in [o.task.id for o in third.claim_unsent().outgoing], "the other API still holds it"
    other.release([created.task.id], claim.until)
    assert created.task.id in [o.task.id for o in third.claim_unsent().outgoing], "released by its holder"


def test_a_message_of_one_type_naming_another_types_task_is_unknown(db):
    tasks, responses = TaskStore(db), ResponseStore(db)
    task = tasks.create(new(), 30).task
    assert receipt(responses, task.id, "e1", task_type="backup") == (Receipt.UNKNOWN, 0)
    assert states(tasks, task.identifier)[1][0] == ("e1", "queued", 0)
    assert receipt(responses, task.id, "e1") == (Receipt.RUN, 1)


def test_an_unknown_task_is_not_found(db):
    with pytest.raises(TaskNotFound):
        TaskStore(db).get("worker", "never-created")
    assert receipt(ResponseStore(db), 10**9, "e1") == (Receipt.UNKNOWN, 0)


def test_an_unreachable_database_is_storage_unavailable():
    nowhere = open_database(DbConfig(uri="mysql+pymysql://tasker:x@127.0.0.1:1/tasker"))
    with pytest.raises(StorageUnavailable, match="database unavailable"):
        TaskStore(nowhere).get("worker", "x")


def test_identifiers_and_endpoints_differ_by_case(db):
    tasks, responses = TaskStore(db), ResponseStore(db)
    name = unique("Case")
    upper = tasks.create(new(identifier=name.upper(), endpoints=["Console1", "console1"]), 30).task
    lower = tasks.create(new(identifier=name.lower()), 30).task
    assert upper.id != lower.id
    assert tasks.get("worker", name.upper())[0].id == upper.id
    for endpoint in ("Console1", "console1"):
        assert receipt(responses, upper.id, endpoint) == (Receipt.RUN, 1)
    finish(responses, upper.id, "Console1", 0, None, None)
    assert finish(responses, upper.id, "console1", 0, None, None) == "DONE"


def test_a_retry_may_list_the_endpoints_in_another_order(db):
    tasks = TaskStore(db)
    first = tasks.create(new(identifier=unique(), endpoints=["e1", "e2"]), 30)
    again = tasks.create(NewTask("worker", first.task.identifier, {"n": 1}, ["e2", "e1"]), 30)
    assert not again.created and again.task.id == first.task.id


def test_a_result_mariadb_cannot_hold_is_a_storage_error_not_a_library_error(database):
    tasks, responses = TaskStore(database), ResponseStore(database)
    task = tasks.create(new(), 30).task
    receipt(responses, task.id, "e1")
    with pytest.raises(StorageError):
        finish(responses, task.id, "e1", 2**40, None, None)


def test_many_tasks_are_created_in_one_call_each_with_its_own_outcome(db):
    tasks = TaskStore(db)
    stored = tasks.create(new(identifier=unique("stored")), 30).task
    again = NewTask("worker", stored.identifier, {"n": 1}, ["e1", "e2"])
    clash = NewTask("worker", stored.identifier, {"n": 2}, ["e1", "e2"])
    twin = new(identifier=unique("twin"))
    results = tasks.create_many([new(), again, clash, twin, twin, NewTask("nobody2", unique(), "", None)], 30)
    assert results[0].created and results[0].task.id
    assert not results[1].created and results[1].task.id == stored.id
    assert isinstance(results[2], TaskConflict)
    assert results[3].created and not results[4].created and results[3].task.id == results[4].task.id
    assert isinstance(results[5], InvalidTask)


def test_a_batch_of_new_tasks_is_inserted_in_one_go_with_ids_in_order(db):
    tasks = TaskStore(db)
    news = [new(identifier=unique("fast"), payload={"n": n}) for n in range(50)]
    results = tasks.create_many(news, 30)
    assert all(r.created for r in results)
    assert [r.task.identifier for r in results] == [n.identifier for n in news]
    ids = [r.task.id for r in results]
    assert len(set(ids)) == 50
    for result in results[::7]:
        task, responses = tasks.get("worker", result.task.identifier)
        assert task.id == result.task.id and [r.endpoint for r in responses] == ["e1", "e2"]


def test_a_task_the_database_refuses_fails_alone_in_its_batch(database):
    tasks = TaskStore(database)
    fine, huge = new(identifier=unique("fine")), NewTask("worker", unique("huge"), "x" * 70_000, ["e" * 50] * 1400)
    results = tasks.create_many([fine, huge], 30)
    assert results[0].created
    assert isinstance(results[1], StorageError)


def test_the_deadline_check_reads_the_responses_by_their_index(database):
    with database.connection() as connection:
        plan = (
            connection.exec_driver_sql(
                "EXPLAIN SELECT task_id FROM task_response WHERE state = 'queued' AND deadline < NOW()"
                " ORDER BY deadline LIMIT 500"
            )
            .mappings()
            .all()
        )
    assert plan[0]["key"] == "ix_task_response_state_deadline", plan
    assert plan[0]["type"] == "range" and "filesort" not in (plan[0]["Extra"] or ""), plan


def test_starts_of_several_runs_are_recorded_in_one_call(db):
    tasks, responses = TaskStore(db), ResponseStore(db)
    first, second = tasks.create(new(endpoints=["e1"]), 30).task, tasks.create(new(endpoints=["e1"]), 30).task
    responses.record_receipts([Arrival(first.id, 1, "worker"), Arrival(second.id, 1, "worker")], "e1")
    responses.record([Start(first.id, 1, 4242), Start(second.id, 1, 4243)], [], "e1")
    for task in (first, second):
        assert states(tasks, task.identifier)[1] == [("e1", "running", 1)]


def test_a_read_of_a_task_sees_one_snapshot_even_when_a_commit_lands_between_its_statements(database):
    # A GET reads the task's row, then its responses: a status committed in between must not
    # show beside the responses of before (a task SENT yet settled, or DONE with a run open).
    task = TaskStore(database).create(new(), 30).task
    with database.snapshot() as reading:
        before = reading.execute(select(TASK.c.status).where(TASK.c.id == task.id)).scalar_one()
        with database.connection() as writing:
            writing.execute(update(TASK).where(TASK.c.id == task.id).values(status="DONE"))
        again = reading.execute(select(TASK.c.status).where(TASK.c.id == task.id)).scalar_one()
    assert again == before != "DONE"
    with database.snapshot() as reading:
        assert reading.execute(select(TASK.c.status).where(TASK.c.id == task.id)).scalar_one() == "DONE"
