"""Runs' outputs in MariaDB (and SQLite): stored in chunks with the outcome, read back whole."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from tasker.errors import RunNotFound, TaskNotFound
from tasker.status import ResponseState
from tasker.storage import Arrival, Finish, NewTask, ResponseStore, TaskStore
from tasker.storage.models import OUTPUT
from tasker.storage.operations import Operations
from tasker.storage.outputs import OutputStore, write_output
from tests.helpers import unique

pytestmark = pytest.mark.integration
MiB = 2**20


def received(db, endpoints=("e1",)):
    """A sent task whose run 1 each endpoint has received."""
    tasks, responses = TaskStore(db), ResponseStore(db)
    task = tasks.create(NewTask("worker", unique("out"), {"n": 1}, list(endpoints)), 30).task
    tasks.mark_sent([task.id])
    for endpoint in endpoints:
        responses.record_receipts([Arrival(task.id, 1, "worker")], endpoint)
    return task


def ended(task, output="", run=1, state=ResponseState.SUCCEEDED, size=None):
    errnr = 0 if state is ResponseState.SUCCEEDED else 1
    size = len(output.encode("utf-8")) if size is None else size
    return Finish(task.id, run, state, errnr, None, None, output, size)


def read_whole(db, task, endpoint="e1", run=None):
    store = OutputStore(db)
    found = store.locate("worker", task.identifier, endpoint, run)
    return found, "".join(store.chunk(chunk_id) for chunk_id in found.chunks)


def response_of(db, task, endpoint="e1"):
    _, responses = TaskStore(db).get("worker", task.identifier)
    return next(response for response in responses if response.endpoint == endpoint)


def chunk_bytes(db, task):
    with db.connection() as connection:
        query = select(OUTPUT.c.chunk).where(OUTPUT.c.task_id == task.id).order_by(OUTPUT.c.seq)
        return [len(chunk.encode("utf-8")) for chunk in connection.execute(query).scalars()]


def test_three_mebibytes_of_output_go_in_chunks_cut_between_characters_and_read_back_whole(db):
    # A three-byte character straddles the first 1 MiB border, four-byte ones fill the next.
    text = "é" * (MiB // 2 - 1) + "a€" + "𝄞" * (MiB // 4 + 1) + "b" * (MiB - 3) + "€𝄞\n" + "z" * 1000
    task = received(db)
    ResponseStore(db).record([], [ended(task, text)], "e1")

    sizes = chunk_bytes(db, task)
    assert len(sizes) >= 4 and max(sizes) <= MiB and sum(sizes) == len(text.encode("utf-8"))
    assert sizes[0] == MiB - 1, "cut before the character across the border"
    found, whole = read_whole(db, task)
    assert whole == text
    assert (found.run, found.state, found.size) == (1, ResponseState.SUCCEEDED, len(text.encode("utf-8")))
    response = response_of(db, task)
    assert (response.output_size, response.output_tail) == (len(text.encode("utf-8")), text[-2000:])
    view = response.view()
    assert list(view)[-2:] == ["output_size", "output_tail"] and view["output_tail"] == text[-2000:]


def test_runs_without_output_store_size_0_and_no_chunks_and_one_not_ended_shows_none(db):
    task = received(db, ("e1", "e2", "e3"))
    responses = ResponseStore(db)
    responses.record([], [ended(task)], "e1")
    responses.record([], [ended(task, "some output\n", state=ResponseState.FAILED)], "e2")
    assert chunk_bytes(db, task) == [len("some output\n")]
    assert (response_of(db, task, "e1").output_size, response_of(db, task, "e1").output_tail) == (0, "")
    assert response_of(db, task, "e2").output_tail == "some output\n"
    assert (response_of(db, task, "e3").output_size, response_of(db, task, "e3").output_tail) == (None, None)
    found, whole = read_whole(db, task, "e3")
    assert (found.state, found.size, found.chunks, whole) == (ResponseState.RECEIVED, None, [], "")


def test_an_outcome_that_is_not_stored_writes_no_output_and_writing_again_replaces_the_chunks(db):
    task = received(db)
    responses = ResponseStore(db)
    responses.record([], [ended(task, "the real one\n")], "e1")
    responses.record([], [ended(task, "a late duplicate\n")], "e1")  # the run is final already
    assert read_whole(db, task)[1] == "the real one\n"
    with db.connection() as connection:
        assert write_output(connection, task.id, "e1", 1, "abc" * 10, 8) == 4
    assert read_whole(db, task)[1] == "abc" * 10 and chunk_bytes(db, task) == [8, 8, 8, 6]


def test_a_retry_keeps_the_earlier_runs_output_and_the_new_run_starts_without(db):
    task = received(db)
    responses = ResponseStore(db)
    responses.record([], [ended(task, "run one\n", state=ResponseState.FAILED)], "e1")
    Operations(db, 5).retry("worker", task.identifier, "failed", None, 30)
    assert (response_of(db, task).run, response_of(db, task).output_size) == (2, None)
    (earlier,) = Operations(db, 5).earlier_runs(task.id)
    assert (earlier.run, earlier.output_size, earlier.output_tail) == (1, 8, "run one\n")
    assert earlier.view()["output_tail"] == "run one\n"

    responses.record_receipts([Arrival(task.id, 2, "worker")], "e1")
    responses.record([], [ended(task, "run two\n", run=2)], "e1")
    assert read_whole(db, task)[1] == "run two\n"
    assert read_whole(db, task, run=2)[1] == "run two\n"
    found, whole = read_whole(db, task, run=1)
    assert (found.run, found.state, whole) == (1, ResponseState.FAILED, "run one\n")
    with pytest.raises(RunNotFound, match="has no run 3"):
        OutputStore(db).locate("worker", task.identifier, "e1", 3)


def test_an_unknown_task_or_endpoint_is_not_found(db):
    task = received(db)
    with pytest.raises(RunNotFound, match="has no endpoint 'e9'"):
        OutputStore(db).locate("worker", task.identifier, "e9")
    with pytest.raises(TaskNotFound):
        OutputStore(db).locate("worker", "nope-" + task.identifier, "e1")
    with pytest.raises(TaskNotFound):
        OutputStore(db).locate("backup", task.identifier, "e1")
