"""The event table as the API's hub, streams and retention read it: where a hub starts, windows of
missed events and whether they were pruned, and pruning by id from the oldest."""

from __future__ import annotations

import datetime as dt

import pytest

from tasker.storage.event_feed import EventFeed, oldest_id, prune, read_window, start_position
from tasker.storage.models import EVENT
from tests.helpers import unique

pytestmark = pytest.mark.integration
# Times far before the session's own events, so that these rows are the only ones that old.
OLD = dt.datetime(2001, 1, 1)
YOUNG = OLD + dt.timedelta(minutes=59, seconds=55)
NOW = OLD + dt.timedelta(hours=1)


def add(db, *rows: tuple[dt.datetime, str, str]) -> list[int]:
    """Store events (time, type, identifier); their ids, in order."""
    ids = []
    with db.connection() as connection:
        for time, task_type, identifier in rows:
            row = {"time": time, "kind": "task", "type": task_type, "identifier": identifier, "data": "{}"}
            ids.append(connection.execute(EVENT.insert(), row).inserted_primary_key[0])
    return ids


def test_a_hub_starts_at_the_newest_event_older_than_the_settle_time(db):
    identifier = unique("start")
    ids = add(db, (OLD, "worker", identifier), (OLD, "worker", identifier), (YOUNG, "worker", identifier))
    with db.connection() as connection:
        assert start_position(connection, NOW) == ids[1], "the young one may follow an id still open"
        assert start_position(connection, OLD - dt.timedelta(days=1)) == 0


def test_a_window_holds_the_events_of_the_filters_between_two_ids(db):
    one, two = unique("one"), unique("two")
    ids = add(db, (NOW, "worker", one), (NOW, "worker", two), (NOW, "backup", one), (NOW, "worker", one))
    with db.connection() as connection:
        window = read_window(connection, ids[0] - 1, ids[2], "worker", one)
        assert ([e.id for e in window.events], window.pruned) == ([ids[0]], False)
        assert [e.id for e in read_window(connection, ids[0], ids[3], None, one).events] == [ids[2], ids[3]]
        assert [e.identifier for e in read_window(connection, ids[0] - 1, ids[3]).events] == [one, two, one, one]
        assert read_window(connection, ids[3], ids[3]).events == []


def test_a_window_starting_before_the_oldest_event_kept_says_it_may_have_lost_events(db):
    add(db, (NOW, "worker", unique("w")))
    with db.connection() as connection:
        oldest = oldest_id(connection)
        assert not read_window(connection, oldest - 1, oldest).pruned, "the next id is there"
        lost = read_window(connection, oldest - 2, oldest)
        assert lost.pruned and lost.events == [], "the id before the oldest may have been pruned"


def test_pruning_deletes_the_oldest_events_a_batch_at_a_time_and_keeps_the_young(db):
    identifier = unique("prune")
    ids = add(db, *[(OLD, "worker", identifier)] * 5, (YOUNG, "worker", identifier))
    feed, before = EventFeed(db), OLD + dt.timedelta(minutes=30)
    batches = []
    while deleted := feed.prune(before, 2):
        batches.append(deleted)
        assert len(batches) < 10_000
    assert all(batch <= 2 for batch in batches) and sum(batches) >= 5
    oldest, newest = feed.bounds()
    assert oldest == ids[5] and newest >= ids[5], "every id up to the last old one is gone, the young one kept"
    with db.connection() as connection:
        assert prune(connection, before, 100) == 0
