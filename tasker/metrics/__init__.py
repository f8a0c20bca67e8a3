"""Metrics: `GET /metrics` in the Prometheus text format. The only package that imports
prometheus_client.

The fleet's figures (tasks, runs, the outbox, the deadline check, endpoints and their queues)
come from the database and the managers' heartbeats, so every API process answers the same;
the POST latency and the process figures are each API process's own.
"""

from __future__ import annotations

from tasker.clock import utcnow
from tasker.config import MetricsConfig
from tasker.metrics.exposition import CONTENT_TYPE, Metrics
from tasker.metrics.fleet import FleetCollector
from tasker.storage import Database
from tasker.storage.fleet import read_fleet

__all__ = ["CONTENT_TYPE", "FleetCollector", "Metrics", "api_metrics"]


def api_metrics(settings: MetricsConfig, database: Database) -> Metrics:
    """The metrics of an API process whose database is `database`."""
    fleet = FleetCollector(lambda: read_fleet(database, utcnow(), settings.window))
    return Metrics(fleet, settings.cache_seconds)
