"""The tables: `task`, `task_response` and `endpoint_registration`."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from sqlalchemy import (
    Boolean,
    DateTime,
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

from tasker.clock import format_time

# Payloads may be up to the API's body limit (1 MiB by default): TEXT stops at 64 KiB on MySQL.
JsonText = Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")
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
        Index("ix_task_checked_deadline", "receipt_checked", "deadline"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    identifier: Mapped[str] = mapped_column(Name)
    type: Mapped[str] = mapped_column(Name)
    payload: Mapped[str] = mapped_column(JsonText)
    endpoints: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    start_time: Mapped[dt.datetime] = mapped_column(DateTime)
    last_modified_time: Mapped[dt.datetime] = mapped_column(DateTime)
    # Every endpoint must have received the task by then (SPEC 3.4).
    deadline: Mapped[dt.datetime] = mapped_column(DateTime)
    # Set once the deadline was checked: every endpoint had received it, or the task is INCOMPLETE.
    receipt_checked: Mapped[bool] = mapped_column(Boolean, default=False)
    # An API process publishing this task holds it until then; afterwards the outbox may take it.
    claim_until: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)

    def endpoint_list(self) -> list[str]:
        """The endpoints of the task, decoded."""
        return json.loads(self.endpoints)

    def to_dict(self) -> dict[str, Any]:
        """The task as the API shows it."""
        return task_view(_Attributes(self))


class _Attributes:
    """An object's attributes read as a mapping (loading any that are not loaded yet)."""

    def __init__(self, obj: Any) -> None:
        self.obj = obj

    def __getitem__(self, name: str) -> Any:
        return getattr(self.obj, name)


def task_view(row: Any) -> dict[str, Any]:
    """A task as the API shows it, from a mapping of its column values."""
    return {
        "id": row["id"],
        "identifier": row["identifier"],
        "type": row["type"],
        "payload": json.loads(row["payload"]),
        "endpoints": json.loads(row["endpoints"]),
        "status": row["status"],
        "start_time": format_time(row["start_time"]),
        "last_modified_time": format_time(row["last_modified_time"]),
        "deadline": format_time(row["deadline"]),
    }


class TaskResponse(Base):
    """One endpoint's response to a task: one row per (task, endpoint), however often it ran."""

    __tablename__ = "task_response"
    __table_args__ = (UniqueConstraint("task_id", "endpoint", name="uq_task_response_endpoint"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("task.id", ondelete="CASCADE"))
    endpoint: Mapped[str] = mapped_column(Name)
    status: Mapped[int] = mapped_column(SmallInteger)
    errnr: Mapped[int] = mapped_column(Integer, default=0)
    errmsg: Mapped[str | None] = mapped_column(Text, nullable=True)
    payload: Mapped[str | None] = mapped_column(JsonText, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    start_time: Mapped[dt.datetime] = mapped_column(DateTime)
    last_modified_time: Mapped[dt.datetime] = mapped_column(DateTime)

    def to_dict(self) -> dict[str, Any]:
        """The response as the API shows it."""
        return {
            "id": self.id,
            "task_id": self.task_id,
            "endpoint": self.endpoint,
            "status": self.status,
            "errnr": self.errnr,
            "errmsg": self.errmsg,
            "payload": json.loads(self.payload) if self.payload is not None else None,
            "attempts": self.attempts,
            "start_time": format_time(self.start_time),
            "last_modified_time": format_time(self.last_modified_time),
        }


class EndpointRegistration(Base):
    """An endpoint whose manager serves a task type: who a POST without endpoints goes to."""

    __tablename__ = "endpoint_registration"

    type: Mapped[str] = mapped_column(Name, primary_key=True)
    endpoint: Mapped[str] = mapped_column(Name, primary_key=True)
    registered_time: Mapped[dt.datetime] = mapped_column(DateTime)
    last_seen_time: Mapped[dt.datetime] = mapped_column(DateTime)
