"""The fleet's figures as Prometheus metric families: a Collector that reads the database when
it is collected (so call `collect()` off the IOLoop), the same from any API process.

What is in flight is counted whole; what finished is counted over the last `api.metrics.window`
seconds, as gauges (a window's figures go down as well as up: read them as they are, without
`rate()`); see `tasker.storage.fleet` for why a scrape never reads the whole history.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from typing import Callable, Iterator

from prometheus_client.core import GaugeHistogramMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from tasker.errors import StorageError, StorageUnavailable
from tasker.status import ResponseState, TaskStatus
from tasker.storage.fleet import FleetFigures

log = logging.getLogger(__name__)
_EPOCH = dt.datetime(1970, 1, 1)
# Run durations are whole seconds (as the database keeps times): no bucket below one.
DURATION_BUCKETS = (1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400)


class FleetCollector(Collector):
    """Reads the fleet with `read` (blocking) at each collection and yields its families, with
    `tasker_fleet_up` 0 instead when the database cannot be read."""

    def __init__(self, read: Callable[[], FleetFigures], buckets: tuple[float, ...] = DURATION_BUCKETS) -> None:
        self.read = read
        self.buckets = buckets

    def collect(self) -> Iterator[Metric]:
        started = time.perf_counter()
        try:
            fleet = self.read()
        except (StorageUnavailable, StorageError) as exc:
            log.warning("metrics: cannot read the fleet's figures: %s", exc)
            yield _gauge("tasker_fleet_up", "Whether this scrape read the fleet's figures from the database.", 0)
            return
        yield from fleet_families(fleet, self.buckets)
        yield _gauge("tasker_fleet_up", "Whether this scrape read the fleet's figures from the database.", 1)
        took = time.perf_counter() - started
        yield _gauge(
            "tasker_fleet_read_duration_seconds", "Seconds the database took to give the fleet's figures.", took
        )


def fleet_families(fleet: FleetFigures, buckets: tuple[float, ...] = DURATION_BUCKETS) -> list[Metric]:
    """Every fleet metric family of one reading."""
    return [
        *_task_families(fleet),
        *_run_families(fleet),
        _durations(fleet, buckets),
        *_endpoint_families(fleet),
    ]


def _task_families(fleet: FleetFigures) -> list[Metric]:
    in_flight = GaugeMetricFamily(
        "tasker_tasks_in_flight",
        "Tasks not settled, by type and status: CREATED (stored, not confirmed sent) and SENT; all of them.",
        labels=["type", "status"],
    )
    for (kind, status), flight in sorted(fleet.tasks_in_flight.items()):
        in_flight.add_metric([kind, status.value], flight.count)
    settled = GaugeMetricFamily(
        "tasker_window_tasks_settled",
        "Tasks that settled (DONE, INCOMPLETE, CANCELLED) in the last tasker_window_seconds, by type and status.",
        labels=["type", "status"],
    )
    for (kind, status), count in sorted(fleet.tasks_settled.items()):
        settled.add_metric([kind, status.value], count)
    unsent = [flight for (_, status), flight in fleet.tasks_in_flight.items() if status is TaskStatus.CREATED]
    oldest = min((flight.earliest for flight in unsent if flight.earliest is not None), default=None)
    return [
        in_flight,
        settled,
        _gauge("tasker_window_seconds", "Seconds back that the tasker_window_* figures count.", fleet.window),
        _gauge(
            "tasker_outbox_tasks",
            "Tasks stored but not confirmed sent (CREATED): the outbox's backlog.",
            sum(flight.count for flight in unsent),
        ),
        _gauge(
            "tasker_outbox_oldest_age_seconds",
            "Seconds since the oldest task still CREATED was stored (0: none).",
            _age(fleet, oldest),
        ),
    ]


def _run_families(fleet: FleetFigures) -> list[Metric]:
    open_runs = GaugeMetricFamily(
        "tasker_runs_open",
        "Current runs of endpoints not final, by task type and state (queued, received, running); all of them.",
        labels=["type", "state"],
    )
    for (kind, state), flight in sorted(fleet.runs_open.items()):
        open_runs.add_metric([kind, state.value], flight.count)
    finished = GaugeMetricFamily(
        "tasker_window_runs_finished",
        "Current runs of endpoints that became final in the last tasker_window_seconds, by task type and state.",
        labels=["type", "state"],
    )
    for (kind, state), count in sorted(fleet.runs_finished.items()):
        finished.add_metric([kind, state.value], count)
    queued = [flight for (_, state), flight in fleet.runs_open.items() if state is ResponseState.QUEUED]
    earliest = min((flight.earliest for flight in queued if flight.earliest is not None), default=None)
    lag = _age(fleet, earliest)  # negative until the earliest deadline comes: no lag then
    return [
        open_runs,
        finished,
        _gauge(
            "tasker_deadline_check_lag_seconds",
            "Seconds the oldest run still queued is past its delivery deadline (0: none): how far behind "
            "the API's delivery deadline check is.",
            max(0.0, lag),
        ),
    ]


def _durations(fleet: FleetFigures, buckets: tuple[float, ...]) -> Metric:
    family = GaugeHistogramMetricFamily(
        "tasker_window_run_duration_seconds",
        "Seconds runs took, from the manager's receipt to the outcome (whole seconds), of the runs that "
        "ended in the last tasker_window_seconds after their handler ran, by task type.",
        labels=["type"],
    )
    for kind, by_seconds in sorted(fleet.durations.items()):
        counts = [sum(n for took, n in by_seconds.items() if took <= bound) for bound in buckets]
        total = sum(by_seconds.values())
        pairs = [(_bound(bound), float(count)) for bound, count in zip(buckets, counts, strict=True)]
        family.add_metric([kind], [*pairs, ("+Inf", float(total))], float(sum(t * n for t, n in by_seconds.items())))
    return family


def _endpoint_families(fleet: FleetFigures) -> list[Metric]:
    registered = GaugeMetricFamily(
        "tasker_endpoints_registered", "Endpoints registered, by task type.", labels=["type"]
    )
    alive = GaugeMetricFamily(
        "tasker_endpoints_alive",
        "Endpoints whose manager was seen within 3 of its heartbeat intervals, by task type.",
        labels=["type"],
    )
    labels = ["type", "endpoint"]
    up = GaugeMetricFamily(
        "tasker_endpoint_up",
        "1 if the endpoint's manager was seen within 3 of its heartbeat intervals, else 0 "
        "(none for a manager that promised no interval).",
        labels=labels,
    )
    queued = GaugeMetricFamily(
        "tasker_endpoint_queued_messages",
        "Messages waiting in the endpoint's queue, as of its last heartbeat.",
        labels=labels,
    )
    busy = GaugeMetricFamily(
        "tasker_endpoint_busy", "1 if the manager ran a task at its last heartbeat, else 0.", labels=labels
    )
    seen = GaugeMetricFamily(
        "tasker_endpoint_last_seen_timestamp_seconds", "Unix time of the manager's last heartbeat.", labels=labels
    )
    registered_by_type: dict[str, int] = {}
    alive_by_type: dict[str, int] = {}
    for endpoint in fleet.endpoints:
        key = [endpoint.type, endpoint.endpoint]
        state = endpoint.alive(fleet.now)
        registered_by_type[endpoint.type] = registered_by_type.get(endpoint.type, 0) + 1
        alive_by_type[endpoint.type] = alive_by_type.get(endpoint.type, 0) + (state is True)
        if state is not None:
            up.add_metric(key, 1 if state else 0)
        if endpoint.queued is not None:
            queued.add_metric(key, endpoint.queued)
        if endpoint.heartbeat_interval is not None:
            busy.add_metric(key, 1 if endpoint.running else 0)
        seen.add_metric(key, _unix(endpoint.last_seen_time))
    for kind in sorted(registered_by_type):
        registered.add_metric([kind], registered_by_type[kind])
        alive.add_metric([kind], alive_by_type[kind])
    return [registered, alive, up, queued, busy, seen]


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def _age(fleet: FleetFigures, since: dt.datetime | None) -> float:
    return 0.0 if since is None else (fleet.now - since).total_seconds()


def _unix(naive_utc: dt.datetime) -> float:
    return (naive_utc - _EPOCH).total_seconds()


def _bound(bound: float) -> str:
    return str(float(bound))
