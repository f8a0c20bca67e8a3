"""Task retention: old settled tasks go with their responses, earlier runs and output, a batch per
transaction; open, young and recently changed ones stay; several pruners delete each task once."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading

import pytest
from sqlalchemy import func, insert, inspect, select

from tasker.api.task_retention import TaskRetention
from tasker.clock import utcnow
from tasker.storage.models import OUTPUT, RESPONSE, RUN, TASK
from tasker.storage.task_retention import TaskRetentionStore
from tests.integration.task_rows import add_task, fresh_type

pytestmark = pytest.mark.integration
OLD = utcnow() - dt.timedelta(days=100)
DONE = {"e1": "succeeded", "e2": "failed"}


def prune_round(db, days: int = 90, batch: int = 500) -> int:
    """One round of the API's retention, its blocking calls in threads as the executor runs them."""
    retention = TaskRetention(TaskRetentionStore(db, batch), days, asyncio.to_thread, pause=0.01)
    return asyncio.run(retention.prune())


def rows_of(db, task_id: int) -> dict[str, int]:
    with db.connection() as connection:
        return {
            table.name: connection.execute(
                select(func.count())
                .select_from(table)
                .where((table.c.id if table is TASK else table.c.task_id) == task_id)
            ).scalar_one()
            for table in (TASK, RESPONSE, RUN, OUTPUT)
        }


def add_run_and_output(db, task_id: int) -> None:
    """An earlier run of e2 (a retry kept it) and output chunks of both runs."""
    with db.connection() as connection:
        connection.execute(
            insert(RUN).values(
                task_id=task_id,
                endpoint="e2",
                run=1,
                state="failed",
                status=1,
                errnr=1,
                attempts=1,
                start_time=OLD,
                last_modified_time=OLD,
                deadline=OLD,
            )
        )
        chunks = [{"task_id": task_id, "endpoint": "e2", "run": run, "seq": 0, "chunk": "out"} for run in (1, 2)]
        connection.execute(insert(OUTPUT), chunks)


def test_an_old_settled_task_goes_with_its_responses_earlier_runs_and_output(db):
    task_type = fresh_type()
    old = add_task(db, task_type, "old", OLD, DONE)
    add_run_and_output(db, old)
    young = add_task(db, task_type, "young", utcnow() - dt.timedelta(days=89), DONE)
    running = add_task(db, task_type, "running", OLD, {"e1": "succeeded", "e2": "running"}, status="SENT")
    retried = add_task(db, task_type, "retried", OLD, DONE, modified=utcnow() - dt.timedelta(days=1))
    assert rows_of(db, old) == {"task": 1, "task_response": 2, "task_run": 1, "run_output": 2}

    assert prune_round(db) >= 1
    assert rows_of(db, old) == {"task": 0, "task_response": 0, "task_run": 0, "run_output": 0}
    for kept in (young, running, retried):
        assert rows_of(db, kept)["task"] == 1 and rows_of(db, kept)["task_response"] == 2


def test_retention_days_zero_keeps_every_task(db):
    task_id = add_task(db, fresh_type(), "ancient", OLD - dt.timedelta(days=3650), DONE)
    assert prune_round(db, days=0) == 0
    assert rows_of(db, task_id)["task"] == 1


def test_batches_go_on_past_the_tasks_they_keep(db):
    task_type = fresh_type()
    doomed = []
    for number in range(25):  # every third one still runs: kept, and the batches go past it
        states = {"e1": "running"} if number % 3 == 0 else DONE
        task_id = add_task(db, task_type, "b-%02d" % number, OLD + dt.timedelta(seconds=number), states)
        if number % 3:
            doomed.append(task_id)
    store = TaskRetentionStore(db, batch=4)
    assert prune_round(db, batch=4) >= len(doomed)
    assert all(rows_of(db, task_id)["task"] == 0 for task_id in doomed)
    assert store.prune(task_type, utcnow()).deleted == 0  # what is left is open


def test_several_api_processes_pruning_at_once_delete_each_task_once(db):
    task_type = fresh_type()
    for number in range(120):
        add_task(db, task_type, "c-%03d" % number, OLD + dt.timedelta(seconds=number // 7), DONE)
    cutoff = utcnow() - dt.timedelta(days=90)
    deleted, errors = [], []

    def pruner() -> None:
        async def one_type() -> int:
            retention = TaskRetention(TaskRetentionStore(db, batch=10), 90, asyncio.to_thread, pause=0)
            return await retention.prune_type(task_type, cutoff)

        try:
            deleted.append(asyncio.run(one_type()))
        except Exception as exc:  # any failure of a pruner fails the test below
            errors.append(exc)

    threads = [threading.Thread(target=pruner) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors and sum(deleted) == 120, (errors, deleted)
    with db.connection() as connection:
        assert connection.execute(select(func.count()).where(TASK.c.type == task_type)).scalar_one() == 0


def test_every_table_of_a_task_deletes_with_it_on_mariadb(database):
    """The foreign keys cascade too (retention deletes explicitly: SQLite does not enforce them)."""
    with database.engine.connect() as connection:
        inspector = inspect(connection)
        for table in ("task_response", "task_run", "run_output"):
            (key,) = inspector.get_foreign_keys(table)
            assert key["referred_table"] == "task" and key["options"].get("ondelete") == "CASCADE", (table, key)
