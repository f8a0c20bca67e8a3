"""A run's output in the database: written in chunks with the run's outcome, read back one chunk
at a time.

A run's chunks are written in the transaction that records how it ended, and never change after
it (a run that ended is never finished again): a reader may fetch them one by one, each in a
transaction of its own, and still read the output as it was stored.
"""

from __future__ import annotations

import dataclasses
from typing import Iterable, Iterator, Protocol

from sqlalchemy import bindparam, delete, insert, select
from sqlalchemy.engine import Connection

from tasker.errors import RunNotFound, TaskNotFound
from tasker.status import ResponseState
from tasker.storage.database import Database
from tasker.storage.models import OUTPUT, RESPONSE, RUN, TASK

CHUNK_BYTES = 2**20  # the most UTF-8 one chunk holds
TAIL_CHARS = 2000  # what `output_tail` keeps of the end
# What an INSERT of one chunk sends beyond the chunk's text: the statement and the other values.
_STATEMENT_SLACK = 1024
_MIN_CHUNK = 256


@dataclasses.dataclass(frozen=True)
class StoredOutput:
    """Where one run's output is: the run, its state and output size (None while no manager
    recorded its end), and the ids of its chunks in order."""

    task_id: int
    endpoint: str
    run: int
    state: ResponseState
    size: int | None
    chunks: list[int]


def output_tail(text: str) -> str:
    """What a response shows of a run's output: its last 2,000 characters."""
    return text[-TAIL_CHARS:]


def split_chunks(text: str, limit: int = CHUNK_BYTES) -> Iterator[str]:
    """The text in pieces of at most `limit` bytes of UTF-8 (at least one character each), cut
    only between characters; joined, they are the text."""
    if text.isascii():  # the usual case: a character is a byte
        for start in range(0, len(text), limit):
            yield text[start : start + limit]
        return
    data = text.encode("utf-8")
    start = 0
    while start < len(data):
        end = min(start + limit, len(data))
        while end < len(data) and data[end] & 0xC0 == 0x80:  # a continuation byte: not a boundary
            end -= 1
        if end == start:  # a limit below one character's length: take that character whole
            end = start + 1
            while end < len(data) and data[end] & 0xC0 == 0x80:
                end += 1
        yield data[start:end].decode("utf-8")
        start = end


def chunk_limit(packet_limit: int | None) -> int:
    """The bytes of UTF-8 one chunk may hold under the database's packet limit: 1 MiB, or less
    where a statement with it could be refused (every character escaped takes two bytes)."""
    if packet_limit is None:
        return CHUNK_BYTES
    return max(_MIN_CHUNK, min(CHUNK_BYTES, (packet_limit - _STATEMENT_SLACK) // 2))


def write_output(connection: Connection, task_id: int, endpoint: str, run: int, text: str, limit: int) -> int:
    """Store a run's output as chunks of at most `limit` bytes, in place of any it has; return
    how many. One INSERT per chunk: a statement never holds more than one chunk."""
    keys = {"b_task_id": task_id, "b_endpoint": endpoint, "b_run": run}
    connection.execute(_DELETE, keys)
    count = 0
    for seq, chunk in enumerate(split_chunks(text, limit)):
        connection.execute(_INSERT, dict(keys, b_seq=seq, b_chunk=chunk))
        count += 1
    return count


class Finished(Protocol):
    """A run whose outcome is being recorded (`tasker.storage.responses.Finish`)."""

    task_id: int
    run: int
    output: str


def write_outputs(connection: Connection, finished: Iterable[Finished], endpoint: str, database: Database) -> None:
    """Store the output of each of these runs of `endpoint` that wrote any, in chunks the
    database's packet limit takes."""
    with_output = [run for run in finished if run.output]
    if with_output:
        limit = chunk_limit(database.packet_limit)
        for run in with_output:
            write_output(connection, run.task_id, endpoint, run.run, run.output, limit)


class OutputStore:
    """Reading runs' outputs for the API. Every method is blocking: call it from an executor."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def locate(self, task_type: str, identifier: str, endpoint: str, run: int | None = None) -> StoredOutput:
        """Where the output of one endpoint's run of a task is: its current run, or run `run`
        (current or earlier). TaskNotFound for an unknown task, RunNotFound for an endpoint the
        task does not have or a run that endpoint did not have."""
        with self.database.connection() as connection:
            task_id = connection.execute(
                select(TASK.c.id).where(TASK.c.type == task_type, TASK.c.identifier == identifier)
            ).scalar_one_or_none()
            if task_id is None:
                raise TaskNotFound("no %s task with identifier %r" % (task_type, identifier))
            keys = {"b_task_id": task_id, "b_endpoint": endpoint}
            row = connection.execute(_CURRENT, keys).first()
            if row is None:
                raise RunNotFound("task %r has no endpoint %r" % (identifier, endpoint))
            if run is not None and run != row.run:
                current, row = row.run, None
                if run < current:  # an earlier run, kept by the retry that replaced it
                    row = connection.execute(_EARLIER, dict(keys, b_run=run)).first()
                if row is None:
                    message = "endpoint %r of task %r has no run %d (its current run is %d)"
                    raise RunNotFound(message % (endpoint, identifier, run, current))
            chunks = list(connection.execute(_CHUNK_IDS, dict(keys, b_run=row.run)).scalars())
            return StoredOutput(task_id, endpoint, row.run, ResponseState(row.state), row.output_size, chunks)

    def chunk(self, chunk_id: int) -> str:
        """The text of one chunk; RunNotFound if it is gone (its task was deleted)."""
        with self.database.connection() as connection:
            text = connection.execute(_CHUNK, {"b_id": chunk_id}).scalar_one_or_none()
        if text is None:
            raise RunNotFound("a chunk of this output is gone")
        return text


# Built once: every output read and every outcome with output runs them.
_KEYS = (
    OUTPUT.c.task_id == bindparam("b_task_id"),
    OUTPUT.c.endpoint == bindparam("b_endpoint"),
    OUTPUT.c.run == bindparam("b_run"),
)
_DELETE = delete(OUTPUT).where(*_KEYS)
_INSERT = insert(OUTPUT).values(
    task_id=bindparam("b_task_id"),
    endpoint=bindparam("b_endpoint"),
    run=bindparam("b_run"),
    seq=bindparam("b_seq"),
    chunk=bindparam("b_chunk"),
)
_CURRENT = select(RESPONSE.c.run, RESPONSE.c.state, RESPONSE.c.output_size).where(
    RESPONSE.c.task_id == bindparam("b_task_id"), RESPONSE.c.endpoint == bindparam("b_endpoint")
)
_EARLIER = select(RUN.c.run, RUN.c.state, RUN.c.output_size).where(
    RUN.c.task_id == bindparam("b_task_id"), RUN.c.endpoint == bindparam("b_endpoint"), RUN.c.run == bindparam("b_run")
)
_CHUNK_IDS = select(OUTPUT.c.id).where(*_KEYS).order_by(OUTPUT.c.seq)
_CHUNK = select(OUTPUT.c.chunk).where(OUTPUT.c.id == bindparam("b_id"))
