"""Webhooks' rules, free of any library: a webhook's key, the signature of a delivery, the
body of an event, and when a failed delivery is tried again.

A delivery is signed with HMAC-SHA256 of `<timestamp>.<body>` (the `X-Tasker-Timestamp`
header's value, a dot, and the body's bytes as sent) keyed with the webhook's secret, and
the signature is sent as `X-Tasker-Signature: sha256=<hex digest>`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import hmac
import json
import random
import urllib.parse
from typing import Callable

SIGNATURE_PREFIX = "sha256="
KINDS = ("task", "response")
# Seconds one POST may take, connecting included.
POST_TIMEOUT = 10.0


@dataclasses.dataclass(frozen=True)
class Retry:
    """When a failed delivery is tried again: after `first` seconds, doubling each time up to
    `cap`, each delay jittered down by up to half; given up `give_up` seconds after the
    delivery was made (a delivery is tried at least once)."""

    first: float = 10.0
    cap: float = 900.0
    give_up: float = 86400.0


def webhook_key(url: str) -> str:
    """The stable name of the webhook posting to `url`: the same URL is the same webhook
    across restarts and config changes, another URL another webhook."""
    return hashlib.sha256(url.encode()).hexdigest()[:32]


def shown_url(url: str) -> str:
    """The URL as logs show it: scheme, host and path, without credentials or query."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = "%s:%d" % (host, parts.port)
    return "%s://%s%s" % (parts.scheme, host, parts.path)


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """The `X-Tasker-Signature` of `body` sent at `timestamp` (the `X-Tasker-Timestamp`)."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return SIGNATURE_PREFIX + digest


def is_signed(secret: str, timestamp: str, body: bytes, signed: str) -> bool:
    """Whether `signed` is the signature of `body` at `timestamp` (compared in constant time)."""
    return hmac.compare_digest(signature(secret, timestamp, body), signed)


def signed_headers(delivery_id: str, secret: str, body: bytes, now: float) -> dict[str, str]:
    """The headers of one POST of a delivery, signed at `now` (seconds since the epoch)."""
    timestamp = str(int(now))
    return {
        "Content-Type": "application/json",
        "X-Tasker-Delivery": delivery_id,
        "X-Tasker-Timestamp": timestamp,
        "X-Tasker-Signature": signature(secret, timestamp, body),
    }


def event_body(event_id: int, kind: str, data: str) -> str:
    """What a webhook receives of an event: `{"id", "event", "data"}`, as `GET /events`
    names them (`id:`, `event:`, `data:`)."""
    return '{"id":%s,"event":%s,"data":%s}' % (json.dumps(str(event_id)), json.dumps(kind), data)


def wants(types: frozenset[str], kinds: frozenset[str], kind: str, task_type: str) -> bool:
    """Whether a webhook of these `types` (empty: all) and event `kinds` gets this event."""
    return kind in kinds and (not types or task_type in types)


def retry_delay(attempts: int, retry: Retry, draw: Callable[[], float] = random.random) -> float:
    """Seconds to wait after the `attempts`-th failed attempt: exponential, capped, jittered
    between half of it and all of it so that receivers coming back are not hit at once."""
    exponent = min(attempts - 1, 60)
    delay = min(retry.cap, retry.first * 2.0**exponent)
    return delay / 2 + draw() * delay / 2


def next_attempt(
    attempts: int, created: dt.datetime, now: dt.datetime, retry: Retry, draw: Callable[[], float] = random.random
) -> dt.datetime | None:
    """When to try a delivery again after its `attempts`-th attempt failed at `now`, or None to
    give it up (`retry.give_up` seconds passed since it was made). The time is rounded up to
    a whole second, as the database keeps it: a retry never comes before its delay."""
    if (now - created).total_seconds() >= retry.give_up:
        return None
    due = now + dt.timedelta(seconds=retry_delay(attempts, retry, draw))
    return due.replace(microsecond=0) + dt.timedelta(seconds=1) if due.microsecond else due
