"""Registered endpoints and their managers' heartbeats: who a task without endpoints goes to,
and what each manager last said of itself (`GET /endpoints`).

A manager registers when it starts and beats every `manager.heartbeat_interval` seconds: each
beat is its registration's `last_seen_time` with its host, pid, version, the identifier it runs
and its queue's depth. A beat registers an endpoint that is not (a manager deregistered while
it was thought gone comes back as it beats again). Whether a manager is alive is the
lifecycle's rule (`tasker.lifecycle.liveness`); this module reads and writes the rows.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging

from sqlalchemy import and_, bindparam, delete, insert, select, update
from sqlalchemy.engine import Connection

from tasker.clock import utcnow
from tasker.errors import DuplicateRow
from tasker.lifecycle.liveness import Seen, dead_endpoints, is_alive
from tasker.status import ResponseState
from tasker.storage.database import Database, retry_conflicts
from tasker.storage.models import REGISTRATION, RESPONSE, TASK

log = logging.getLogger(__name__)
HOST_MAX, VERSION_MAX = 255, 32  # the columns' sizes


@dataclasses.dataclass(frozen=True)
class Heartbeat:
    """What a manager says of itself at each beat; None where it cannot say."""

    host: str | None = None
    pid: int | None = None
    version: str | None = None
    running: str | None = None  # the identifier of the task it runs
    queued: int | None = None  # messages waiting for it
    interval: float | None = None  # seconds until its next beat


@dataclasses.dataclass(frozen=True)
class Registration:
    """A registered (type, endpoint) with its manager's latest heartbeat."""

    type: str
    endpoint: str
    registered_time: dt.datetime
    last_seen_time: dt.datetime
    host: str | None
    pid: int | None
    version: str | None
    running: str | None
    queued: int | None
    heartbeat_interval: float | None

    def alive(self, now: dt.datetime) -> bool | None:
        """Whether its manager is alive at `now` (None: it predates heartbeats, see `is_alive`)."""
        return is_alive(self.last_seen_time, self.heartbeat_interval, now)


class RegistrationStore:
    """The `endpoint_registration` rows. Every method is blocking."""

    def __init__(self, database: Database) -> None:
        self.database = database

    @retry_conflicts
    def beat(self, task_type: str, endpoint: str, heartbeat: Heartbeat = Heartbeat()) -> None:
        """Record that `endpoint` serves `task_type` and was seen now, saying `heartbeat`;
        registered if it is not, so tasks without endpoints reach it."""
        now = utcnow()
        values = _values(heartbeat, now)
        key = (REGISTRATION.c.type == task_type) & (REGISTRATION.c.endpoint == endpoint)
        with self.database.connection() as connection:
            if connection.execute(update(REGISTRATION).where(key).values(values)).rowcount:
                return
        try:
            with self.database.connection() as connection:
                row = dict(values, type=task_type, endpoint=endpoint, registered_time=now)
                connection.execute(insert(REGISTRATION).values(row))
        except DuplicateRow:  # registered by another manager of the endpoint meanwhile
            with self.database.connection() as connection:
                connection.execute(update(REGISTRATION).where(key).values(values))

    def listing(self, task_type: str | None = None) -> list[Registration]:
        """Every registration (of one task type), by type and endpoint."""
        query = select(REGISTRATION).order_by(REGISTRATION.c.type, REGISTRATION.c.endpoint)
        if task_type is not None:
            query = query.where(REGISTRATION.c.type == task_type)
        with self.database.connection() as connection:
            return [_registration(row) for row in connection.execute(query)]

    def find(self, task_type: str, endpoint: str) -> Registration | None:
        """One registration, or None."""
        key = (REGISTRATION.c.type == task_type) & (REGISTRATION.c.endpoint == endpoint)
        with self.database.connection() as connection:
            row = connection.execute(select(REGISTRATION).where(key)).first()
        return _registration(row) if row is not None else None

    def deregister(self, task_type: str, endpoint: str) -> bool:
        """Forget that `endpoint` serves `task_type`; False if it was not registered."""
        key = (REGISTRATION.c.type == task_type) & (REGISTRATION.c.endpoint == endpoint)
        with self.database.connection() as connection:
            return bool(connection.execute(delete(REGISTRATION).where(key)).rowcount)


def gone_runners(connection: Connection, task_id: int, endpoint: str, now: dt.datetime) -> frozenset[str]:
    """The endpoints other than `endpoint` that hold a run of the task `running` while their
    manager is gone (not alive, or deregistered): their runs hold no slot of max_concurrency."""
    seen: dict[str, Seen | None] = {}
    for row in connection.execute(_RUNNERS, {"b_task_id": task_id, "b_endpoint": endpoint}):
        seen[row.endpoint] = (row.last_seen_time, row.heartbeat_interval) if row.last_seen_time else None
    return dead_endpoints(seen, now) if seen else frozenset()


def _values(heartbeat: Heartbeat, now: dt.datetime) -> dict:
    return {
        "last_seen_time": now,
        "host": heartbeat.host[:HOST_MAX] if heartbeat.host else heartbeat.host,
        "pid": heartbeat.pid,
        "version": heartbeat.version[:VERSION_MAX] if heartbeat.version else heartbeat.version,
        "running": heartbeat.running,
        "queued": heartbeat.queued,
        "heartbeat_interval": heartbeat.interval,
    }


def _registration(row) -> Registration:
    return Registration(
        type=row.type,
        endpoint=row.endpoint,
        registered_time=row.registered_time,
        last_seen_time=row.last_seen_time,
        host=row.host,
        pid=row.pid,
        version=row.version,
        running=row.running,
        queued=row.queued,
        heartbeat_interval=row.heartbeat_interval,
    )


# The task's runs `running` elsewhere, with the registration (if any) of their endpoint.
_RUNNERS = (
    select(RESPONSE.c.endpoint, REGISTRATION.c.last_seen_time, REGISTRATION.c.heartbeat_interval)
    .select_from(
        RESPONSE.join(TASK, TASK.c.id == RESPONSE.c.task_id).outerjoin(
            REGISTRATION,
            and_(REGISTRATION.c.type == TASK.c.type, REGISTRATION.c.endpoint == RESPONSE.c.endpoint),
        )
    )
    .where(
        RESPONSE.c.task_id == bindparam("b_task_id"),
        RESPONSE.c.endpoint != bindparam("b_endpoint"),
        RESPONSE.c.state == ResponseState.RUNNING.value,
    )
)
