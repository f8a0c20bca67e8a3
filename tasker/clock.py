"""UTC time as tasker stores and shows it."""

from __future__ import annotations

import datetime as dt

TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


def utcnow() -> dt.datetime:
    """Return the current UTC time as a naive datetime, as the database stores it."""
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None, microsecond=0)


def format_time(value: dt.datetime | None) -> str | None:
    """Format a stored time as `YYYY-MM-DD HH:MM:SS` (UTC), or None."""
    return value.strftime(TIME_FORMAT) if value is not None else None


def utcnow_precise() -> dt.datetime:
    """The current UTC time as a naive datetime, with its microseconds."""
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
