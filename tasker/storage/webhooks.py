"""Webhook deliveries: made from the events, once per (webhook, event) however many API
processes make them; claimed by one API process at a time, as the outbox claims tasks;
recorded as delivered, due again later, or given up; pruned.

A webhook's cursor (`webhook_cursor`) is the id of the last event turned into its deliveries.
It is locked, read, moved and the deliveries inserted in one transaction, so two API
processes never make the same deliveries (and `uq_webhook_delivery_event` would refuse them).
A webhook seen for the first time starts after the newest event: it gets what happens from
then on, not the history.

One task's deliveries to one webhook go out in the order of its events: a delivery is claimed
only once every earlier one of its task and webhook was delivered or given up. To keep those
waiting out of the way of the claim, a delivery made or failed behind an earlier one that waits
for a retry is not due before it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from typing import Iterable

from sqlalchemy import bindparam, delete, func, insert, or_, select, update
from sqlalchemy.engine import Connection

from tasker.errors import DuplicateRow
from tasker.storage.database import Database, retry_conflicts
from tasker.storage.events import Event, read_settled
from tasker.storage.models import EVENT, WEBHOOK_CURSOR, WEBHOOK_DELIVERY
from tasker.webhooks import event_body, wants

CURSOR, DELIVERY = WEBHOOK_CURSOR, WEBHOOK_DELIVERY
# A cursor kept while nothing happens is marked seen this often, not on every look.
SEEN_EVERY = dt.timedelta(seconds=60)


@dataclasses.dataclass(frozen=True)
class Subscription:
    """What storage needs of a configured webhook: its key, and the events it wants (`types`
    empty: every task type)."""

    key: str
    types: frozenset[str]
    kinds: frozenset[str]


@dataclasses.dataclass(frozen=True)
class Delivery:
    """One event to POST to one webhook, as claimed; `attempts` made before this one."""

    id: int
    webhook: str
    event_id: int
    type: str
    identifier: str
    body: str
    attempts: int
    created_time: dt.datetime


@dataclasses.dataclass(frozen=True)
class Claim:
    """Deliveries one API process may send; `token` names its claim on them."""

    deliveries: list[Delivery]
    token: str


@dataclasses.dataclass(frozen=True)
class Attempt:
    """How one attempt at a claimed delivery went: delivered (`error` None), or failed and due
    again at `next_time` (None: given up)."""

    delivery: Delivery
    token: str
    error: str | None
    next_time: dt.datetime | None = None


class WebhookStore:
    """The webhook_cursor and webhook_delivery rows."""

    def __init__(self, database: Database, batch: int = 500) -> None:
        self.database = database
        self.batch = batch

    def produce(self, subscriptions: Iterable[Subscription], now: dt.datetime) -> bool:
        """Turn the events past each webhook's cursor into its deliveries (up to `batch` events
        a webhook); whether some webhook may have more waiting."""
        more = False
        for subscription in subscriptions:
            try:
                more = self._produce(subscription, now) or more
            except DuplicateRow:
                pass  # another API process made its cursor or these deliveries first
        return more

    @retry_conflicts
    def _produce(self, subscription: Subscription, now: dt.datetime) -> bool:
        key = subscription.key
        with self.database.connection() as connection:
            query = select(CURSOR.c.event_id, CURSOR.c.seen_time).where(CURSOR.c.webhook == key)
            cursor = connection.execute(query.with_for_update() if self.database.locks_rows else query).first()
            if cursor is None:
                newest = connection.execute(select(func.max(EVENT.c.id))).scalar() or 0
                connection.execute(insert(CURSOR).values(webhook=key, event_id=newest, seen_time=now))
                return False
            events, upto = read_settled(connection, cursor.event_id, self.batch, now)
            wanted = [e for e in events if wants(subscription.types, subscription.kinds, e.kind, e.type)]
            if wanted:
                connection.execute(insert(DELIVERY), _new_rows(connection, key, wanted, now))
            if upto != cursor.event_id or now - cursor.seen_time >= SEEN_EVERY:
                connection.execute(update(CURSOR).where(CURSOR.c.webhook == key).values(event_id=upto, seen_time=now))
            return len(events) == self.batch

    @retry_conflicts
    def claim(self, keys: list[str], now: dt.datetime, limit: int, claim_seconds: float) -> Claim:
        """Claim, for `claim_seconds`, up to `limit` due deliveries to these webhooks that no
        other API process holds and no earlier delivery of their task waits before; only one
        API process wins each."""
        token = uuid.uuid4().hex
        if not keys or limit < 1:
            return Claim([], token)
        until = now + dt.timedelta(seconds=claim_seconds)
        with self.database.connection() as connection:
            ids = list(connection.execute(_DUE, {"keys": keys, "now": now, "limit": limit}).scalars())
            if not ids:
                return Claim([], token)
            connection.execute(
                update(DELIVERY)
                .where(DELIVERY.c.id.in_(ids), DELIVERY.c.next_attempt_time.is_not(None), _unclaimed(now))
                .values(claim=token, claim_until=until)
            )
            rows = connection.execute(
                select(DELIVERY).where(DELIVERY.c.id.in_(ids), DELIVERY.c.claim == token).order_by(DELIVERY.c.id)
            )
            return Claim([_delivery(row) for row in rows], token)

    @retry_conflicts
    def record(self, attempts: list[Attempt], now: dt.datetime) -> list[bool]:
        """Record how these attempts went, each if its claim still holds (else another API
        process took the delivery over, and its record counts); whether each was recorded."""
        recorded = []
        with self.database.connection() as connection:
            for attempt in attempts:
                recorded.append(_record(connection, attempt, now))
        return recorded

    @retry_conflicts
    def release(self, deliveries: list[Delivery], token: str) -> None:
        """Give up our claim on deliveries not attempted, so that any API process sends them now."""
        if deliveries:
            with self.database.connection() as connection:
                connection.execute(
                    update(DELIVERY)
                    .where(DELIVERY.c.id.in_([d.id for d in deliveries]), DELIVERY.c.claim == token)
                    .values(claim=None, claim_until=None)
                )

    def prune(self, keys: list[str], now: dt.datetime, keep: float, forget: float, limit: int = 1000) -> int:
        """Delete up to `limit` deliveries delivered or given up over `keep` seconds ago, and
        any made over `keep + forget` seconds ago (a webhook no longer configured), and forget
        the cursors of webhooks not in `keys` and not seen for `forget` seconds (added again,
        such a webhook starts afresh); how many deliveries were deleted."""
        kept_since = now - dt.timedelta(seconds=keep)
        made_since = kept_since - dt.timedelta(seconds=forget)
        with self.database.connection() as connection:
            old = (DELIVERY.c.created_time < kept_since) & DELIVERY.c.next_attempt_time.is_(None)
            query = select(DELIVERY.c.id).where(or_(old, DELIVERY.c.created_time < made_since))
            ids = list(connection.execute(query.order_by(DELIVERY.c.created_time).limit(limit)).scalars())
            if ids:
                connection.execute(delete(DELIVERY).where(DELIVERY.c.id.in_(ids)))
            stale = CURSOR.c.seen_time < now - dt.timedelta(seconds=forget)
            connection.execute(delete(CURSOR).where(stale, CURSOR.c.webhook.not_in(keys)))
        return len(ids)


def _new_rows(connection: Connection, key: str, events: list[Event], now: dt.datetime) -> list[dict]:
    """The delivery rows of these events to webhook `key`: due now, or when the latest
    earlier delivery of their task that waits for a retry is due."""
    waiting = _retry_times(connection, key, events, now)
    return [
        {
            "webhook": key,
            "event_id": event.id,
            "type": event.type,
            "identifier": event.identifier,
            "body": event_body(event.id, event.kind, event.data),
            "created_time": now,
            "attempts": 0,
            "next_attempt_time": waiting.get((event.type, event.identifier), now),
        }
        for event in events
    ]


def _retry_times(
    connection: Connection, key: str, events: list[Event], now: dt.datetime
) -> dict[tuple[str, str], dt.datetime]:
    """The latest retry time of the deliveries to `key` waiting for one, by task of `events`."""
    by_type: dict[str, set[str]] = {}
    for event in events:
        by_type.setdefault(event.type, set()).add(event.identifier)
    found = {}
    for task_type, identifiers in by_type.items():
        rows = connection.execute(
            _RETRY_TIMES, {"key": key, "type": task_type, "identifiers": sorted(identifiers), "now": now}
        )
        found.update({(task_type, row.identifier): row.due for row in rows})
    return found


def _record(connection: Connection, attempt: Attempt, now: dt.datetime) -> bool:
    delivery = attempt.delivery
    values: dict = {"attempts": delivery.attempts + 1, "claim": None, "claim_until": None}
    if attempt.error is None:
        values.update(next_attempt_time=None, delivered_time=now)
    elif attempt.next_time is None:
        values.update(next_attempt_time=None, given_up_time=now, last_error=attempt.error[:200])
    else:
        values.update(next_attempt_time=attempt.next_time, last_error=attempt.error[:200])
    mine = (DELIVERY.c.id == delivery.id) & (DELIVERY.c.claim == attempt.token)
    if not connection.execute(update(DELIVERY).where(mine).values(**values)).rowcount:
        return False
    if attempt.error is not None and attempt.next_time is not None:
        # The task's later deliveries wait for this one: not due before it is.
        connection.execute(
            update(DELIVERY)
            .where(
                DELIVERY.c.webhook == delivery.webhook,
                DELIVERY.c.type == delivery.type,
                DELIVERY.c.identifier == delivery.identifier,
                DELIVERY.c.event_id > delivery.event_id,
                DELIVERY.c.next_attempt_time < attempt.next_time,
            )
            .values(next_attempt_time=attempt.next_time)
        )
    return True


def _unclaimed(now: dt.datetime):
    return or_(DELIVERY.c.claim_until.is_(None), DELIVERY.c.claim_until < now)


def _delivery(row) -> Delivery:
    return Delivery(
        row.id, row.webhook, row.event_id, row.type, row.identifier, row.body, row.attempts, row.created_time
    )


_EARLIER = DELIVERY.alias("earlier")
_EARLIER_WAITING = (
    select(_EARLIER.c.id)
    .where(
        _EARLIER.c.webhook == DELIVERY.c.webhook,
        _EARLIER.c.type == DELIVERY.c.type,
        _EARLIER.c.identifier == DELIVERY.c.identifier,
        _EARLIER.c.event_id < DELIVERY.c.event_id,
        _EARLIER.c.next_attempt_time.is_not(None),
    )
    .exists()
)
_DUE = (
    select(DELIVERY.c.id)
    .where(
        DELIVERY.c.webhook.in_(bindparam("keys", expanding=True)),
        DELIVERY.c.next_attempt_time <= bindparam("now"),
        or_(DELIVERY.c.claim_until.is_(None), DELIVERY.c.claim_until < bindparam("now")),
        ~_EARLIER_WAITING,
    )
    .order_by(DELIVERY.c.next_attempt_time, DELIVERY.c.id)
    .limit(bindparam("limit"))
)
_RETRY_TIMES = (
    select(DELIVERY.c.identifier, func.max(DELIVERY.c.next_attempt_time).label("due"))
    .where(
        DELIVERY.c.webhook == bindparam("key"),
        DELIVERY.c.type == bindparam("type"),
        DELIVERY.c.identifier.in_(bindparam("identifiers", expanding=True)),
        DELIVERY.c.next_attempt_time > bindparam("now"),
    )
    .group_by(DELIVERY.c.identifier)
)
