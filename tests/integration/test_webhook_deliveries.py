"""Webhook deliveries: made once per (webhook, event), claimed by one sender at a time, in
the order of each task's events, retried, given up and pruned."""

from __future__ import annotations

import datetime as dt
import json
import threading

import pytest
from sqlalchemy import func, select, update

from tasker.clock import utcnow
from tasker.storage.events import queued_event, task_event, write
from tasker.storage.models import WEBHOOK_CURSOR, WEBHOOK_DELIVERY
from tasker.storage.webhooks import Attempt, Subscription, WebhookStore
from tasker.webhooks import webhook_key
from tests.helpers import unique

pytestmark = pytest.mark.integration
BOTH = frozenset({"task", "response"})


def subscription(types=(), kinds=BOTH) -> Subscription:
    return Subscription(webhook_key("http://%s.example/hook" % unique("hook")), frozenset(types), kinds)


def emit(db, identifier, statuses=("CREATED",), task_type="worker", now=None):
    """Write a `task` event of the task for each status, in order."""
    now = now or utcnow()
    with db.connection() as connection:
        write(connection, [task_event(task_type, identifier, status, [], now) for status in statuses])


def emit_response(db, identifier, task_type="worker"):
    with db.connection() as connection:
        write(connection, [queued_event(task_type, identifier, "e1", utcnow())])


def deliveries(db, key):
    """(identifier, status or state) of each delivery to webhook `key`, in event order."""
    with db.connection() as connection:
        rows = connection.execute(
            select(WEBHOOK_DELIVERY).where(WEBHOOK_DELIVERY.c.webhook == key).order_by(WEBHOOK_DELIVERY.c.event_id)
        ).all()
    shown = []
    for row in rows:
        body = json.loads(row.body)
        assert body["id"] == str(row.event_id)
        shown.append((body["data"]["identifier"], body["data"].get("status") or body["data"]["state"]))
    return shown


def started(db, store, sub):
    """The webhook's cursor, made now: it gets the events from here on."""
    store.produce([sub], utcnow())
    return store


def test_a_new_webhook_gets_the_events_after_it_was_added_and_each_once(db):
    store, sub, before, after = WebhookStore(db), subscription(), unique("before"), unique("after")
    emit(db, before)
    started(db, store, sub)
    emit(db, after, ("CREATED", "SENT", "DONE"))
    store.produce([sub], utcnow())
    store.produce([sub], utcnow())
    assert deliveries(db, sub.key) == [(after, "CREATED"), (after, "SENT"), (after, "DONE")]


def test_a_webhook_gets_only_the_types_and_kinds_it_names(db):
    store = WebhookStore(db)
    tasks_of_worker, everything = subscription(types=["worker"], kinds=frozenset({"task"})), subscription()
    started(db, store, tasks_of_worker), started(db, store, everything)
    identifier = unique("filter")
    emit(db, identifier, task_type="backup")
    emit_response(db, identifier)
    emit(db, identifier, ("SENT",))
    store.produce([tasks_of_worker, everything], utcnow())
    assert deliveries(db, tasks_of_worker.key) == [(identifier, "SENT")]
    assert deliveries(db, everything.key) == [(identifier, "CREATED"), (identifier, "queued"), (identifier, "SENT")]


def test_several_producers_at_once_make_each_delivery_once(db):
    sub, identifier = subscription(), unique("race")
    stores = [WebhookStore(db, batch=7) for _ in range(4)]
    started(db, stores[0], sub)
    stop = threading.Event()
    errors = []

    def produce(store):
        try:
            while not stop.is_set():
                store.produce([sub], utcnow())
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=produce, args=(store,)) for store in stores]
    for thread in threads:
        thread.start()
    for number in range(60):
        emit(db, identifier, ("S%d" % number,))
    stop.set()
    for thread in threads:
        thread.join()
    while stores[0].produce([sub], utcnow()):
        pass
    assert errors == []
    assert deliveries(db, sub.key) == [(identifier, "S%d" % n) for n in range(60)]


def test_each_due_delivery_is_claimed_by_one_sender_until_its_claim_runs_out(db):
    store, other, sub = WebhookStore(db), WebhookStore(db), subscription()
    started(db, store, sub)
    identifiers = [unique("claim") for _ in range(5)]
    for identifier in identifiers:
        emit(db, identifier)
    now = utcnow()
    store.produce([sub], now)
    first = store.claim([sub.key], now, 3, 30)
    second = other.claim([sub.key], now, 10, 30)
    assert len(first.deliveries) == 3 and len(second.deliveries) == 2
    assert {d.identifier for d in first.deliveries + second.deliveries} == set(identifiers)
    assert other.claim([sub.key], now, 10, 30).deliveries == []
    assert store.claim(["not-configured"], now + dt.timedelta(seconds=60), 10, 30).deliveries == []
    assert other.record([Attempt(d, second.token, None) for d in second.deliveries], now) == [True, True]

    later = now + dt.timedelta(seconds=31)
    taken_over = other.claim([sub.key], later, 10, 30)
    assert {d.id for d in taken_over.deliveries} == {d.id for d in first.deliveries}
    late = [Attempt(d, first.token, None) for d in first.deliveries]
    assert store.record(late, later) == [False, False, False]
    mine = [Attempt(d, taken_over.token, None) for d in taken_over.deliveries]
    assert other.record(mine, later) == [True, True, True]
    assert other.claim([sub.key], later + dt.timedelta(seconds=60), 10, 30).deliveries == []


def test_a_task_s_later_delivery_waits_until_the_earlier_one_is_delivered(db):
    store, sub, identifier, neighbour = WebhookStore(db), subscription(), unique("order"), unique("neighbour")
    started(db, store, sub)
    emit(db, identifier, ("CREATED", "SENT"))
    emit(db, neighbour)
    now = utcnow()
    store.produce([sub], now)
    claim = store.claim([sub.key], now, 10, 30)
    assert sorted((d.identifier, json.loads(d.body)["data"]["status"]) for d in claim.deliveries) == sorted(
        [(identifier, "CREATED"), (neighbour, "CREATED")]
    )
    head = next(d for d in claim.deliveries if d.identifier == identifier)
    store.record([Attempt(head, claim.token, None)], now)
    (sent,) = store.claim([sub.key], now, 10, 30).deliveries
    assert (sent.identifier, json.loads(sent.body)["data"]["status"]) == (identifier, "SENT")


def test_a_failed_delivery_holds_its_task_s_later_ones_until_it_is_given_up(db):
    store, sub, identifier = WebhookStore(db), subscription(), unique("retry")
    started(db, store, sub)
    emit(db, identifier, ("CREATED",))
    now = utcnow()
    store.produce([sub], now)
    (head,) = store.claim([sub.key], now, 10, 30).deliveries
    retry_at = now + dt.timedelta(seconds=20)
    claim_token = _token_of(db, head.id)
    assert store.record([Attempt(head, claim_token, "HTTP 500", retry_at)], now) == [True]
    emit(db, identifier, ("SENT", "DONE"))
    store.produce([sub], now)
    assert store.claim([sub.key], now + dt.timedelta(seconds=19), 10, 30).deliveries == []
    with db.connection() as connection:
        due = connection.execute(
            select(WEBHOOK_DELIVERY.c.next_attempt_time).where(
                WEBHOOK_DELIVERY.c.webhook == sub.key, WEBHOOK_DELIVERY.c.id != head.id
            )
        ).scalars()
        assert set(due) == {retry_at}  # made behind a delivery waiting for its retry: due with it

    again = store.claim([sub.key], retry_at, 10, 30)
    assert [(d.id, d.attempts) for d in again.deliveries] == [(head.id, 1)]
    store.record([Attempt(again.deliveries[0], again.token, "timeout", None)], retry_at)
    (sent,) = store.claim([sub.key], retry_at, 10, 30).deliveries
    assert json.loads(sent.body)["data"]["status"] == "SENT"
    with db.connection() as connection:
        row = connection.execute(select(WEBHOOK_DELIVERY).where(WEBHOOK_DELIVERY.c.id == head.id)).one()
    assert (row.attempts, row.next_attempt_time, row.given_up_time, row.last_error) == (2, None, retry_at, "timeout")


def test_a_claim_given_back_is_sent_at_once_by_any_sender(db):
    store, other, sub = WebhookStore(db), WebhookStore(db), subscription()
    started(db, store, sub)
    emit(db, unique("release"))
    now = utcnow()
    store.produce([sub], now)
    claim = store.claim([sub.key], now, 10, 30)
    store.release(claim.deliveries, claim.token)
    assert [d.id for d in other.claim([sub.key], now, 10, 30).deliveries] == [claim.deliveries[0].id]


def test_old_finished_deliveries_and_forgotten_webhooks_are_pruned(db):
    store, kept, dropped = WebhookStore(db), subscription(), subscription()
    for sub in (kept, dropped):
        started(db, store, sub)
    emit(db, unique("prune"), ("CREATED", "SENT"))
    now = utcnow()
    store.produce([kept, dropped], now)
    claim = store.claim([kept.key], now, 10, 30)
    store.record([Attempt(claim.deliveries[0], claim.token, None)], now)

    day = dt.timedelta(days=1)
    store.prune([kept.key], now + day / 2, keep=86400, forget=86400)
    assert len(deliveries(db, kept.key)) == 2 and len(deliveries(db, dropped.key)) == 2
    store.prune([kept.key], now + day + dt.timedelta(seconds=1), keep=86400, forget=86400)
    assert len(deliveries(db, kept.key)) == 1  # delivered a day ago: gone; the other still due
    with db.connection() as connection:
        cursors = set(connection.execute(select(WEBHOOK_CURSOR.c.webhook)).scalars())
    assert kept.key in cursors and dropped.key not in cursors  # not configured, not seen for a day
    store.prune([kept.key], now + 2 * day + dt.timedelta(seconds=1), keep=86400, forget=86400)
    assert deliveries(db, kept.key) == []


def test_a_cursor_is_marked_seen_while_nothing_happens(db):
    store, sub = WebhookStore(db), subscription()
    now = utcnow()
    store.produce([sub], now)
    with db.connection() as connection:
        connection.execute(
            update(WEBHOOK_CURSOR)
            .where(WEBHOOK_CURSOR.c.webhook == sub.key)
            .values(seen_time=now - dt.timedelta(hours=1))
        )
    store.produce([sub], now)
    with db.connection() as connection:
        seen = connection.execute(
            select(func.max(WEBHOOK_CURSOR.c.seen_time)).where(WEBHOOK_CURSOR.c.webhook == sub.key)
        ).scalar()
    assert seen == now


def _token_of(db, delivery_id):
    with db.connection() as connection:
        return connection.execute(
            select(WEBHOOK_DELIVERY.c.claim).where(WEBHOOK_DELIVERY.c.id == delivery_id)
        ).scalar_one()
