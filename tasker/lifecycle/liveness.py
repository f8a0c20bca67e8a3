"""Whether an endpoint's manager is alive: it writes a heartbeat every `heartbeat_interval`
seconds, and one not seen for `DEAD_AFTER` of its own intervals is taken for gone. A run it
holds `running` then no longer counts against a task's max_concurrency."""

from __future__ import annotations

import datetime as dt
from typing import Mapping

# Heartbeat intervals a manager may miss before it counts as gone: one late beat (a busy host,
# a slow database) is no death.
DEAD_AFTER = 3

# When a manager was last seen and the interval it promised to beat at; None: not registered.
Seen = tuple[dt.datetime, float | None]


def is_alive(last_seen: dt.datetime, interval: float | None, now: dt.datetime) -> bool | None:
    """Whether a manager last seen at `last_seen`, beating every `interval` seconds, is alive at
    `now`. None when it promised no interval: a manager older than heartbeats registered once at
    its start and never since, so its silence says nothing."""
    if interval is None:
        return None
    return now - last_seen <= dt.timedelta(seconds=DEAD_AFTER * interval)


def dead_endpoints(seen: Mapping[str, Seen | None], now: dt.datetime) -> frozenset[str]:
    """Those endpoints whose manager is gone: not alive, or not registered at all (deregistered,
    which takes a manager that is not alive). One that cannot be told (no interval) is not."""
    return frozenset(
        endpoint
        for endpoint, registration in seen.items()
        if registration is None or is_alive(registration[0], registration[1], now) is False
    )
