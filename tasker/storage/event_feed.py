"""The API's reading of the event table beside `read_settled`: where its hub starts, a window of
events for a client that comes back with the last id it got, and the pruning of old events.

Retention deletes events by id, oldest first: what is left is always every event after some
id, so a window whose first id is below the oldest one kept may have lost events (the client
gets `reset`), and one above it has them all.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from sqlalchemy import delete, func, select
from sqlalchemy.engine import Connection

from tasker.storage.database import Database
from tasker.storage.events import SETTLE_SECONDS, Event, read_settled, settled_upto
from tasker.storage.models import EVENT


@dataclasses.dataclass(frozen=True)
class Window:
    """The events of an id window that match a stream's filters, and whether some events of the
    window may be gone already (pruned: the stream cannot be resumed from its first id)."""

    events: list[Event]
    pruned: bool


class EventFeed:
    """The event table as the API's hub, streams and retention use it: each call one short
    transaction (blocking: the API runs them in its executor)."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def start(self, now: dt.datetime) -> int:
        """Where the hub of an API process that starts now begins to read (`start_position`)."""
        with self.database.connection() as connection:
            return start_position(connection, now)

    def read_new(self, after: int, limit: int, now: dt.datetime) -> tuple[list[Event], int]:
        """The settled events after `after` (`read_settled`), and where to read next."""
        with self.database.connection() as connection:
            return read_settled(connection, after, limit, now)

    def skip_new(self, after: int, limit: int, now: dt.datetime) -> tuple[int, int]:
        """Where `read_new` would read next, without reading the events (`settled_upto`)."""
        with self.database.connection() as connection:
            return settled_upto(connection, after, limit, now)

    def window(self, after: int, upto: int, task_type: str | None, identifier: str | None) -> Window:
        """The events of one id window for a stream (`read_window`)."""
        with self.database.connection() as connection:
            return read_window(connection, after, upto, task_type, identifier)

    def bounds(self) -> tuple[int | None, int]:
        """The oldest event's id (None when there is none) and the newest's (0 when none)."""
        with self.database.connection() as connection:
            return oldest_id(connection), newest_id(connection)

    def prune(self, before: dt.datetime, limit: int) -> int:
        """Delete up to `limit` events older than `before` (`prune`); how many went."""
        with self.database.connection() as connection:
            return prune(connection, before, limit)


def start_position(connection: Connection, now: dt.datetime, settle: float = SETTLE_SECONDS) -> int:
    """Where a reader that starts now begins `read_settled`: the id of the newest event written
    more than `settle` seconds ago (every id before it is committed or never will be), or 0.

    The reader then reads the few seconds of events after it; it never reads back through history.
    """
    before = now - dt.timedelta(seconds=settle)
    newest_old = (
        select(EVENT.c.id).where(EVENT.c.time < before).order_by(EVENT.c.time.desc(), EVENT.c.id.desc()).limit(1)
    )
    return connection.execute(newest_old).scalar() or 0


def newest_id(connection: Connection) -> int:
    """The id of the newest event stored (committed), or 0."""
    return connection.execute(select(func.max(EVENT.c.id))).scalar() or 0


def oldest_id(connection: Connection) -> int | None:
    """The id of the oldest event stored, or None."""
    return connection.execute(select(func.min(EVENT.c.id))).scalar()


def read_window(
    connection: Connection, after: int, upto: int, task_type: str | None = None, identifier: str | None = None
) -> Window:
    """The events with ids after `after` up to `upto`, oldest first, of one type and identifier if
    given; `pruned` when events after `after` may have been deleted by the retention."""
    query = select(EVENT).where(EVENT.c.id > after, EVENT.c.id <= upto)
    if task_type is not None:
        query = query.where(EVENT.c.type == task_type)
    if identifier is not None:
        query = query.where(EVENT.c.identifier == identifier)
    rows = connection.execute(query.order_by(EVENT.c.id)).all()
    # Read after the rows: the oldest id only grows, so if nothing after `after` is gone now,
    # nothing was when the rows were read.
    oldest = oldest_id(connection)
    pruned = upto > after and (oldest is None or oldest > after + 1)
    events = [Event(row.id, row.time, row.kind, row.type, row.identifier, row.data) for row in rows]
    return Window([] if pruned else events, pruned)


def prune(connection: Connection, before: dt.datetime, limit: int) -> int:
    """Delete at most `limit` of the oldest events, none written at or after `before`; return how
    many went. Safe to run in several processes at once: each deletes an id range from the start."""
    newest_old = (
        select(EVENT.c.id).where(EVENT.c.time < before).order_by(EVENT.c.time.desc(), EVENT.c.id.desc()).limit(1)
    )
    boundary = connection.execute(newest_old).scalar()
    if boundary is None:
        return 0
    nth = select(EVENT.c.id).where(EVENT.c.id <= boundary).order_by(EVENT.c.id).offset(limit - 1).limit(1)
    upper = connection.execute(nth).scalar()
    return connection.execute(delete(EVENT).where(EVENT.c.id <= (boundary if upper is None else upper))).rowcount
