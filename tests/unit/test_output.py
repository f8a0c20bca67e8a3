"""A run's output: cut into chunks, recorded by the manager even when the database refuses it,
and served by the API chunk by chunk (storage on SQLite, the stub broker, a stub work horse)."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import pytest
import tornado.httpclient
import tornado.httpserver
import tornado.netutil

from tasker.api.app import make_app
from tasker.api.dispatch import Dispatcher
from tasker.api.loop_watch import LoopWatch
from tasker.api.parsing import BodyParser
from tasker.config import load_config
from tasker.errors import StatementTooLarge, StorageUnavailable
from tasker.manager.manager import Manager
from tasker.manager.recorder import _bounded
from tasker.manager.workhorse import Outcome, RunOutput, RunState
from tasker.messaging.message import encode_task
from tasker.messaging.stub import StubBroker
from tasker.status import ResponseState
from tasker.storage import Finish, NewTask, ResponseStore, TaskStore
from tasker.storage.outputs import CHUNK_BYTES, OutputStore, chunk_limit, split_chunks
from tests.helpers import unique, wait_for
from tests.unit.stub_horse import StubHorse


@pytest.mark.parametrize(
    "text, limit",
    [
        ("", 4),
        ("abcdefghij", 4),
        ("é" * 9, 4),
        ("a€b€c€d€", 4),
        ("𝄞x𝄞" * 5, 5),
        ("𝄞𝄞", 2),  # a limit below one character: each piece holds one whole
        ("aé€𝄞" * 1000, 1000),
    ],
)
def test_chunks_stay_within_their_bytes_are_cut_between_characters_and_join_to_the_text(text, limit):
    chunks = list(split_chunks(text, limit))
    assert "".join(chunks) == text
    assert all(chunk for chunk in chunks)
    for chunk in chunks:
        assert len(chunk.encode("utf-8")) <= max(limit, 4)
        assert len(chunk.encode("utf-8")) <= limit or len(chunk) == 1


def test_a_chunk_is_a_mebibyte_unless_the_packet_limit_is_too_small_for_it_escaped():
    assert chunk_limit(None) == chunk_limit(16 * 2**20) == CHUNK_BYTES
    assert chunk_limit(2**20) == (2**20 - 1024) // 2
    assert chunk_limit(1024) == 256


def test_one_transaction_of_outcomes_takes_a_bounded_amount_of_output(monkeypatch):
    monkeypatch.setattr("tasker.manager.recorder.BATCH_OUTPUT", 100)
    ended = [(None, None, Outcome(RunState.SUCCEEDED, 0, None, None, RunOutput("x" * n, n))) for n in (60, 30, 20, 5)]
    assert _bounded(ended) == ended[:2]
    assert _bounded(ended[3:]) == ended[3:]
    huge = [(None, None, Outcome(RunState.SUCCEEDED, 0, None, None, RunOutput("x" * 500, 500)))]
    assert _bounded(huge + ended) == huge, "one outcome at least, whatever its size"


class Refusing(ResponseStore):
    """A response store whose database refuses, as over its packet limit, every batch with an
    outcome `refused(finish)` is true of; it remembers every batch of outcomes it was given."""

    def __init__(self, db, refused: Callable[[Finish], bool]) -> None:
        super().__init__(db)
        self.refused = refused
        self.given: list[Finish] = []

    def record(self, starts, finishes: list[Finish], endpoint):
        self.given.extend(finishes)
        if any(self.refused(finish) for finish in finishes):
            raise StatementTooLarge("the database refused a statement: stub limit", 1024)
        return super().record(starts, finishes, endpoint)


def run_one(db, responses, output: RunOutput, payload=None):
    """Run one task on a manager whose work horse writes `output`; its response once final."""
    broker, tasks = StubBroker(), TaskStore(db)
    horse = StubHorse(lambda job: Outcome(RunState.SUCCEEDED, 0, None, payload, output))
    manager = Manager(
        lambda on: broker.consumer("worker", "e1", on), responses, horse, "worker", "e1", retry_delay=0.05
    )
    thread = threading.Thread(target=manager.run, daemon=True)
    thread.start()
    try:
        task = tasks.create(NewTask("worker", unique(), {"n": 1}, ["e1"]), 30).task
        tasks.mark_sent([task.id])
        broker.put("worker", "e1", encode_task(task, run=1))
        final = wait_for(lambda: tasks.get("worker", task.identifier)[1][0].state.final, 10, 0.01, "the outcome")
        assert final
        wait_for(lambda: manager.consumer.acked, 5, 0.01, "the ack")
        return task, tasks.get("worker", task.identifier)[1][0]
    finally:
        manager.shutdown()
        thread.join(10)


def test_a_manager_stores_a_runs_output_with_its_outcome(db):
    text = "line\n" * 1000 + "é end\n"
    task, response = run_one(db, ResponseStore(db), RunOutput(text, len(text.encode())))
    assert (response.state, response.output_size, response.output_tail) == (
        ResponseState.SUCCEEDED,
        len(text.encode()),
        text[-2000:],
    )
    store = OutputStore(db)
    found = store.locate("worker", task.identifier, "e1")
    assert "".join(store.chunk(chunk) for chunk in found.chunks) == text


def test_output_the_database_refuses_is_stored_as_a_note_and_its_end_and_the_run_keeps_its_result(db):
    text = "start\n" + "y" * 5000 + "\nthe end\n"
    refusing = Refusing(db, lambda finish: len(finish.output) > 4000)
    _, response = run_one(db, refusing, RunOutput(text, 123_456, True), payload={"ok": 1})
    assert (response.state, response.errnr, response.payload.value()) == (ResponseState.SUCCEEDED, 0, {"ok": 1})
    assert response.output_size == 123_456
    assert response.output_tail.startswith("y") and response.output_tail.endswith("\nthe end\n")
    assert len(response.output_tail) == 2000
    (stored,) = [finish for finish in refusing.given if len(finish.output) <= 4000]
    assert stored.output.startswith("[tasker: the database refused this run's output (123456 bytes): ")
    assert stored.output.endswith("\nthe end\n")


def test_an_outcome_refused_even_without_its_output_is_recorded_failed_and_the_manager_goes_on(db):
    refusing = Refusing(db, lambda finish: finish.state is ResponseState.SUCCEEDED)
    _, response = run_one(db, refusing, RunOutput("x" * 10, 10))
    assert (response.state, response.output_size, response.output_tail) == (ResponseState.FAILED, 0, "")
    assert response.errmsg.startswith("result too large for the database")
    tried = [(finish.state, finish.output[:8]) for finish in refusing.given]
    assert tried[-3:] == [
        (ResponseState.SUCCEEDED, "x" * 8),  # alone
        (ResponseState.SUCCEEDED, "[tasker:"),  # alone, its output cut to a note and its end
        (ResponseState.FAILED, ""),  # failed, saying why
    ]


# The API's route, in this process ----------------------------------------------------------


class Served:
    """The test run mode's API on a free port, over storage on SQLite, in a thread of its own."""

    def __init__(self, db) -> None:
        self.db = db
        self.loop = asyncio.new_event_loop()
        self.executor = ThreadPoolExecutor(2)
        config = load_config("test")
        tasks = TaskStore(db)
        self.dispatcher = Dispatcher(config.api, tasks, StubBroker().publisher(), self.executor)
        app = make_app(config, self.dispatcher, BodyParser(0, 10, 10), LoopWatch(1.0))
        sockets = tornado.netutil.bind_sockets(0, "127.0.0.1")
        self.port = sockets[0].getsockname()[1]
        ready = threading.Event()

        def serve():
            asyncio.set_event_loop(self.loop)
            server = tornado.httpserver.HTTPServer(app)
            server.add_sockets(sockets)
            self.loop.call_soon(ready.set)
            self.loop.run_forever()

        self.thread = threading.Thread(target=serve, daemon=True)
        self.thread.start()
        ready.wait(5)

    def get(self, path: str) -> tornado.httpclient.HTTPResponse:
        async def fetch():
            client = tornado.httpclient.AsyncHTTPClient()
            return await client.fetch("http://127.0.0.1:%d%s" % (self.port, path), raise_error=False)

        return asyncio.run_coroutine_threadsafe(fetch(), self.loop).result(10)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.executor.shutdown()


@pytest.fixture
def served(db):
    serving = Served(db)
    yield serving
    serving.close()


def stored_task(db, text: str, endpoint="e1"):
    """A task whose run on `endpoint` succeeded with `text` as its output."""
    tasks = TaskStore(db)
    task = tasks.create(NewTask("worker", unique(), {"n": 1}, [endpoint]), 30).task
    tasks.mark_sent([task.id])
    size = len(text.encode())
    ResponseStore(db).record([], [Finish(task.id, 1, ResponseState.SUCCEEDED, 0, None, None, text, size)], endpoint)
    return task


def test_the_route_streams_every_chunk_of_an_output(db, served):
    text = "ü" * (CHUNK_BYTES // 2) * 2 + "end\n"  # two chunks of one MiB, and a third
    task = stored_task(db, text)
    answer = served.get("/worker/%s/output?endpoint=e1" % task.identifier)
    assert answer.code == 200 and answer.body.decode() == text
    assert answer.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    assert (answer.headers["X-Tasker-Run"], answer.headers["X-Tasker-Run-State"]) == ("1", "succeeded")
    assert answer.headers["X-Tasker-Output-Size"] == str(len(text.encode()))


def test_one_chunk_or_none_goes_with_a_content_length(db, served):
    task = stored_task(db, "short\n")
    answer = served.get("/worker/%s/output?endpoint=e1" % task.identifier)
    assert (answer.code, answer.body, answer.headers["Content-Length"]) == (200, b"short\n", "6")
    empty = stored_task(db, "")
    answer = served.get("/worker/%s/output?endpoint=e1" % empty.identifier)
    assert (answer.code, answer.body, answer.headers["X-Tasker-Output-Size"]) == (200, b"", "0")


def test_a_database_gone_before_the_first_chunk_answers_503_and_after_it_cuts_the_answer_short(db, served):
    task = stored_task(db, "a" * (CHUNK_BYTES * 2 + 10))
    reads = []
    chunk = served.dispatcher.outputs.chunk

    def failing(chunk_id, fail_at):
        reads.append(chunk_id)
        if len(reads) == fail_at:
            raise StorageUnavailable("database unavailable: stub outage")
        return chunk(chunk_id)

    served.dispatcher.outputs.chunk = lambda chunk_id: failing(chunk_id, 1)
    answer = served.get("/worker/%s/output?endpoint=e1" % task.identifier)
    assert answer.code == 503 and answer.headers["Content-Type"].startswith("application/json"), answer.body
    reads.clear()
    served.dispatcher.outputs.chunk = lambda chunk_id: failing(chunk_id, 2)
    with pytest.raises(tornado.httpclient.HTTPClientError, match="Connection closed"):  # not the whole output
        served.get("/worker/%s/output?endpoint=e1" % task.identifier)
    assert served.get("/health").code == 200, "the API goes on"


@pytest.mark.parametrize(
    "query, status",
    [("", 400), ("endpoint=", 400), ("endpoint=e1&run=1.0", 400), ("endpoint=e1&run=%201", 400), ("endpoint=e2", 404)],
)
def test_a_bad_selection_is_a_json_error(db, served, query, status):
    task = stored_task(db, "x")
    answer = served.get("/worker/%s/output?%s" % (task.identifier, query))
    assert answer.code == status and answer.headers["Content-Type"].startswith("application/json"), answer.body
