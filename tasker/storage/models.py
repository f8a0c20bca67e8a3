"""The tables: `task`, `task_response`, `task_run`, `run_output` and `endpoint_registration`."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from sqlalchemy import (
    BigInteger,
    DateTime,
    Double,
    Float,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from tasker.jsontext import JsonText
from tasker.records import ResponseRecord, RunRecord, TaskRecord
from tasker.status import ResponseState, TaskStatus

# Payloads may be up to the API's body limit (1 MiB by default): TEXT stops at 64 KiB on MySQL.
LongText = Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")
# Identifiers, types and endpoint names compare byte for byte: `ABC` and `abc` are two tasks.
Name = String(50).with_variant(mysql.VARCHAR(50, collation="utf8mb4_bin"), "mysql", "mariadb")


class Base(DeclarativeBase):
    """Declarative base of tasker's tables."""


class Task(Base):
    """A task: what a client asked, for which endpoints, and where it stands as a whole."""

    __tablename__ = "task"
    __table_args__ = (
        UniqueConstraint("type", "identifier", name="uq_task_type_identifier"),
        Index("ix_task_status_claim", "status", "claim_until"),
        # The history (GET /<type>) and retention read a type's tasks in (start_time, id) order.
        Index("ix_task_type_start", "type", "start_time", "id"),
        Index("ix_task_type_status_start", "type", "status", "start_time", "id"),
        # /metrics counts the tasks that settled within its window.
        Index("ix_task_status_modified", "status", "last_modified_time"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    identifier: Mapped[str] = mapped_column(Name)
    type: Mapped[str] = mapped_column(Name)
    payload: Mapped[str] = mapped_column(LongText)
    endpoints: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    start_time: Mapped[dt.datetime] = mapped_column(DateTime)
    last_modified_time: Mapped[dt.datetime] = mapped_column(DateTime)
    # Every endpoint must have received run 1 by then; each response keeps its own run's deadline.
    deadline: Mapped[dt.datetime] = mapped_column(DateTime)
    # An API process publishing this task holds it until then; afterwards the outbox may take it.
    claim_until: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    # When a cancel was asked for (None: never, or a retry since).
    cancel_requested: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    # Limits on the task (None: none): seconds a run may take; endpoints running it at once,
    # and failures before the rest is skipped, as given ("3" or "25%").
    timeout: Mapped[float | None] = mapped_column(Double, nullable=True)
    max_concurrency: Mapped[str | None] = mapped_column(String(8), nullable=True)
    max_errors: Mapped[str | None] = mapped_column(String(8), nullable=True)


class TaskResponse(Base):
    """One endpoint's response to a task: one row per (task, endpoint), however often it ran."""

    __tablename__ = "task_response"
    __table_args__ = (
        UniqueConstraint("task_id", "endpoint", name="uq_task_response_endpoint"),
        # The deadline check reads only the queued runs whose deadline passed.
        Index("ix_task_response_state_deadline", "state", "deadline"),
        # The history's filter on an endpoint, when few tasks name it.
        Index("ix_task_response_endpoint", "endpoint", "task_id"),
        # /metrics counts the runs that ended within its window.
        Index("ix_task_response_state_modified", "state", "last_modified_time"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("task.id", ondelete="CASCADE"))
    endpoint: Mapped[str] = mapped_column(Name)
    status: Mapped[int] = mapped_column(SmallInteger)
    errnr: Mapped[int] = mapped_column(Integer, default=0)
    errmsg: Mapped[str | None] = mapped_column(Text, nullable=True)
    payload: Mapped[str | None] = mapped_column(LongText, nullable=True)
    # Deliveries of the current run: 0 while queued, 2 once a manager was killed mid-run.
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    start_time: Mapped[dt.datetime] = mapped_column(DateTime)
    last_modified_time: Mapped[dt.datetime] = mapped_column(DateTime)
    # The current run: its number, its state (tasker.status.ResponseState) and delivery deadline.
    state: Mapped[str] = mapped_column(String(16))
    run: Mapped[int] = mapped_column(Integer, default=1)
    deadline: Mapped[dt.datetime] = mapped_column(DateTime)
    # The process group of the handler process of the current run, while it may be running.
    pgid: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # The latest progress the handler of the current run reported: percent, and a message.
    progress: Mapped[float | None] = mapped_column(Float, nullable=True)
    progress_message: Mapped[str | None] = mapped_column(String(200), nullable=True)
    # The current run's output: its size in bytes as written and its last 2,000 characters,
    # once a manager recorded how the run ended (None before; the text is in run_output).
    output_size: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    output_tail: Mapped[str | None] = mapped_column(Text, nullable=True)


class TaskRun(Base):
    """An earlier run of one endpoint's response, kept when a retry started the next."""

    __tablename__ = "task_run"
    __table_args__ = (UniqueConstraint("task_id", "endpoint", "run", name="uq_task_run_endpoint_run"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("task.id", ondelete="CASCADE"))
    endpoint: Mapped[str] = mapped_column(Name)
    run: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16))
    status: Mapped[int] = mapped_column(SmallInteger)
    errnr: Mapped[int] = mapped_column(Integer)
    errmsg: Mapped[str | None] = mapped_column(Text, nullable=True)
    payload: Mapped[str | None] = mapped_column(LongText, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer)
    start_time: Mapped[dt.datetime] = mapped_column(DateTime)
    last_modified_time: Mapped[dt.datetime] = mapped_column(DateTime)
    deadline: Mapped[dt.datetime] = mapped_column(DateTime)
    output_size: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    output_tail: Mapped[str | None] = mapped_column(Text, nullable=True)


class OutputChunk(Base):
    """A piece of one run's output: at most 1 MiB of UTF-8, cut between characters; a run's
    pieces in `seq` order make its output."""

    __tablename__ = "run_output"
    __table_args__ = (UniqueConstraint("task_id", "endpoint", "run", "seq", name="uq_run_output_chunk"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("task.id", ondelete="CASCADE"))
    endpoint: Mapped[str] = mapped_column(Name)
    run: Mapped[int] = mapped_column(Integer)
    seq: Mapped[int] = mapped_column(Integer)
    chunk: Mapped[str] = mapped_column(LongText)


class EndpointRegistration(Base):
    """An endpoint whose manager serves a task type: who a POST without endpoints goes to."""

    __tablename__ = "endpoint_registration"

    type: Mapped[str] = mapped_column(Name, primary_key=True)
    endpoint: Mapped[str] = mapped_column(Name, primary_key=True)
    registered_time: Mapped[dt.datetime] = mapped_column(DateTime)
    # The latest heartbeat of its manager, and what the manager said of itself then.
    last_seen_time: Mapped[dt.datetime] = mapped_column(DateTime)
    host: Mapped[str | None] = mapped_column(String(255), nullable=True)
    pid: Mapped[int | None] = mapped_column(Integer, nullable=True)
    version: Mapped[str | None] = mapped_column(String(32), nullable=True)
    running: Mapped[str | None] = mapped_column(Name, nullable=True)  # the identifier it runs
    queued: Mapped[int | None] = mapped_column(Integer, nullable=True)  # messages in its queue
    heartbeat_interval: Mapped[float | None] = mapped_column(Float, nullable=True)


class Event(Base):
    """A change of a task's status or of a response's run, written with the change; `id`
    orders them, `data` is the event's JSON as clients get it."""

    __tablename__ = "event"
    __table_args__ = (Index("ix_event_time", "time"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    time: Mapped[dt.datetime] = mapped_column(DateTime)
    kind: Mapped[str] = mapped_column(String(8))
    type: Mapped[str] = mapped_column(Name)
    identifier: Mapped[str] = mapped_column(Name)
    data: Mapped[str] = mapped_column(Text)


def task_record(row: Any) -> TaskRecord:
    """A task row (any mapping or row of the `task` table's columns) as a record."""
    return TaskRecord(
        id=row.id,
        identifier=row.identifier,
        type=row.type,
        payload=JsonText(row.payload),
        endpoints=tuple(json.loads(row.endpoints)),
        status=TaskStatus(row.status),
        start_time=row.start_time,
        last_modified_time=row.last_modified_time,
        deadline=row.deadline,
        cancel_requested=getattr(row, "cancel_requested", None),
        timeout=getattr(row, "timeout", None),
        max_concurrency=limit_value(getattr(row, "max_concurrency", None)),
        max_errors=limit_value(getattr(row, "max_errors", None)),
    )


def limit_text(value: int | str | None) -> str | None:
    """A limit as its column stores it: "3", or "25%"."""
    return None if value is None else str(value)


def limit_value(text: str | None) -> int | str | None:
    """A limit column's text as the client gave it: an int, or a percentage string."""
    if text is None or text.endswith("%"):
        return text
    return int(text)


def response_record(row: Any) -> ResponseRecord:
    """A task_response row as a record."""
    return ResponseRecord(
        id=row.id,
        task_id=row.task_id,
        progress=getattr(row, "progress", None),
        progress_message=getattr(row, "progress_message", None),
        **_run_values(row),
    )


def run_record(row: Any) -> RunRecord:
    """A task_run row (an earlier run) as a record."""
    return RunRecord(**_run_values(row))


def _run_values(row: Any) -> dict[str, Any]:
    """What a row of task_response or task_run says of its run."""
    return {
        "endpoint": row.endpoint,
        "run": row.run,
        "state": ResponseState(row.state),
        "attempts": row.attempts,
        "errnr": row.errnr,
        "errmsg": row.errmsg,
        "payload": JsonText(row.payload) if row.payload is not None else None,
        "start_time": row.start_time,
        "last_modified_time": row.last_modified_time,
        "deadline": row.deadline,
        "output_size": getattr(row, "output_size", None),
        "output_tail": getattr(row, "output_tail", None),
    }


TASK = Task.__table__
RESPONSE = TaskResponse.__table__
RUN = TaskRun.__table__
OUTPUT = OutputChunk.__table__
REGISTRATION = EndpointRegistration.__table__
EVENT = Event.__table__


class WebhookCursor(Base):
    """How far one webhook's deliveries were made: the id of the last event considered."""

    __tablename__ = "webhook_cursor"

    webhook: Mapped[str] = mapped_column(String(32), primary_key=True)
    event_id: Mapped[int] = mapped_column(BigInteger)
    # The last time an API process with this webhook configured moved or kept the cursor.
    seen_time: Mapped[dt.datetime] = mapped_column(DateTime)


class WebhookDelivery(Base):
    """One event to POST to one webhook: due while `next_attempt_time` is set, claimed by the
    API process sending it until `claim_until`; delivered or given up once it is None."""

    __tablename__ = "webhook_delivery"
    __table_args__ = (
        UniqueConstraint("webhook", "event_id", name="uq_webhook_delivery_event"),
        # The due deliveries of the configured webhooks, soonest first.
        Index("ix_webhook_delivery_due", "webhook", "next_attempt_time"),
        # A task's earlier deliveries to a webhook, which go before its later ones.
        Index("ix_webhook_delivery_task", "webhook", "type", "identifier", "event_id"),
        Index("ix_webhook_delivery_created", "created_time"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    webhook: Mapped[str] = mapped_column(String(32))
    event_id: Mapped[int] = mapped_column(BigInteger)
    type: Mapped[str] = mapped_column(Name)
    identifier: Mapped[str] = mapped_column(Name)
    body: Mapped[str] = mapped_column(Text)
    created_time: Mapped[dt.datetime] = mapped_column(DateTime)
    attempts: Mapped[int] = mapped_column(Integer)
    next_attempt_time: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    claim: Mapped[str | None] = mapped_column(String(32), nullable=True)
    claim_until: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    delivered_time: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    given_up_time: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    last_error: Mapped[str | None] = mapped_column(String(200), nullable=True)


WEBHOOK_CURSOR = WebhookCursor.__table__
WEBHOOK_DELIVERY = WebhookDelivery.__table__
