"""The fleet's figures as Prometheus families, and the exposition's cache (tasker.metrics), with
readings made by hand: no database."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tasker.errors import StorageUnavailable
from tasker.metrics import FleetCollector, Metrics
from tasker.status import ResponseState, TaskStatus
from tasker.storage.fleet import FleetFigures, Flight
from tasker.storage.registrations import Registration

NOW = dt.datetime(2026, 1, 2, 3, 4, 5)


def registration(endpoint: str, seen_ago: float, interval: float | None, queued=None, running=None) -> Registration:
    seen = NOW - dt.timedelta(seconds=seen_ago)
    return Registration("worker", endpoint, seen, seen, "host", 1, "1.0.0", running, queued, interval)


def figures(**changes) -> FleetFigures:
    values = dict(
        now=NOW,
        window=60.0,
        tasks_in_flight={
            ("worker", TaskStatus.CREATED): Flight(2, NOW - dt.timedelta(seconds=30)),
            ("backup", TaskStatus.CREATED): Flight(1, NOW - dt.timedelta(seconds=5)),
            ("worker", TaskStatus.SENT): Flight(4, NOW - dt.timedelta(seconds=90)),
        },
        tasks_settled={("worker", TaskStatus.DONE): 7, ("worker", TaskStatus.INCOMPLETE): 1},
        runs_open={
            ("worker", ResponseState.QUEUED): Flight(3, NOW - dt.timedelta(seconds=12)),
            ("worker", ResponseState.RUNNING): Flight(1, NOW + dt.timedelta(seconds=20)),
        },
        runs_finished={("worker", ResponseState.SUCCEEDED): 5, ("worker", ResponseState.MISSING): 1},
        durations={"worker": {0: 2, 3: 2, 4000: 1}},
        endpoints=[
            registration("beating", 1, 2.0, queued=7, running="t-1"),
            registration("stale", 60, 2.0, queued=0),
            registration("old-manager", 3600, None),
        ],
    )
    values.update(changes)
    return FleetFigures(**values)


def scrape(collector: FleetCollector) -> dict[str, dict[tuple, float]]:
    """Each sample's value by name and sorted labels, as a scraper reads them."""
    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    samples: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def test_tasks_in_flight_and_settled_show_by_type_and_status():
    got = scrape(FleetCollector(figures))
    assert got["tasker_tasks_in_flight"] == {
        (("status", "CREATED"), ("type", "backup")): 1,
        (("status", "CREATED"), ("type", "worker")): 2,
        (("status", "SENT"), ("type", "worker")): 4,
    }
    assert got["tasker_window_tasks_settled"][(("status", "DONE"), ("type", "worker"))] == 7
    assert got["tasker_window_seconds"][()] == 60


def test_the_outbox_is_the_created_tasks_and_the_age_of_the_oldest():
    got = scrape(FleetCollector(figures))
    assert got["tasker_outbox_tasks"][()] == 3
    assert got["tasker_outbox_oldest_age_seconds"][()] == 30


def test_the_deadline_lag_is_how_long_the_oldest_queued_run_is_overdue():
    assert scrape(FleetCollector(figures))["tasker_deadline_check_lag_seconds"][()] == 12
    early = {("worker", ResponseState.QUEUED): Flight(3, NOW + dt.timedelta(seconds=12))}
    assert scrape(FleetCollector(lambda: figures(runs_open=early)))["tasker_deadline_check_lag_seconds"][()] == 0
    assert scrape(FleetCollector(lambda: figures(runs_open={})))["tasker_deadline_check_lag_seconds"][()] == 0


def test_run_durations_are_a_cumulative_histogram_with_their_sum():
    got = scrape(FleetCollector(figures))
    buckets = {dict(labels)["le"]: value for labels, value in got["tasker_window_run_duration_seconds_bucket"].items()}
    assert (buckets["1.0"], buckets["2.0"], buckets["5.0"], buckets["3600.0"], buckets["7200.0"]) == (2, 2, 4, 4, 5)
    assert buckets["+Inf"] == 5
    assert got["tasker_window_run_duration_seconds_gcount"][(("type", "worker"),)] == 5
    assert got["tasker_window_run_duration_seconds_gsum"][(("type", "worker"),)] == 4006


def test_endpoints_are_alive_within_three_heartbeat_intervals():
    got = scrape(FleetCollector(figures))
    assert got["tasker_endpoints_registered"] == {(("type", "worker"),): 3}
    assert got["tasker_endpoints_alive"] == {(("type", "worker"),): 1}
    up = {dict(labels)["endpoint"]: value for labels, value in got["tasker_endpoint_up"].items()}
    assert up == {"beating": 1, "stale": 0}  # a manager without an interval cannot be told
    queued = {dict(labels)["endpoint"]: value for labels, value in got["tasker_endpoint_queued_messages"].items()}
    assert queued == {"beating": 7, "stale": 0}
    busy = {dict(labels)["endpoint"]: value for labels, value in got["tasker_endpoint_busy"].items()}
    assert busy == {"beating": 1, "stale": 0}
    seen = got["tasker_endpoint_last_seen_timestamp_seconds"][(("endpoint", "beating"), ("type", "worker"))]
    assert seen == (NOW - dt.datetime(1970, 1, 1)).total_seconds() - 1


def test_a_database_that_cannot_be_read_gives_fleet_up_0_and_no_fleet_figures():
    def unavailable() -> FleetFigures:
        raise StorageUnavailable("database down")

    got = scrape(FleetCollector(unavailable))
    assert got == {"tasker_fleet_up": {(): 0}}
    assert scrape(FleetCollector(figures))["tasker_fleet_up"][()] == 1


class Reader:
    """A fleet reading that counts its calls and can be held until released."""

    def __init__(self) -> None:
        self.calls = 0
        self.release = threading.Event()
        self.release.set()

    def __call__(self) -> FleetFigures:
        self.calls += 1
        assert self.release.wait(10)
        return figures()


@pytest.fixture
def clock():
    return [100.0]


def metrics_with(reader: Reader, clock: list[float]) -> Metrics:
    return Metrics(FleetCollector(reader), cache_seconds=2.0, clock=lambda: clock[0])


async def off_loop(call, *args):
    return await asyncio.get_running_loop().run_in_executor(None, call, *args)


def test_scrapes_within_the_cache_time_read_the_database_once(clock):
    reader = Reader()
    metrics = metrics_with(reader, clock)

    async def scrapes() -> list[bytes]:
        first = await metrics.render(off_loop)
        clock[0] += 1.9
        second = await metrics.render(off_loop)
        clock[0] += 0.2
        third = await metrics.render(off_loop)
        return [first, second, third]

    answers = asyncio.run(scrapes())
    assert reader.calls == 2
    assert all(b"tasker_tasks_in_flight" in answer for answer in answers)


def test_concurrent_scrapes_share_one_reading(clock):
    reader = Reader()
    reader.release.clear()
    metrics = metrics_with(reader, clock)

    async def storm() -> list[bytes]:
        scrapes = [asyncio.ensure_future(metrics.render(off_loop)) for _ in range(20)]
        await asyncio.sleep(0)
        reader.release.set()
        return await asyncio.gather(*scrapes)

    answers = asyncio.run(storm())
    assert reader.calls == 1 and len(set(answers)) <= 2  # the process's own figures may move between them


def test_post_latency_is_this_processes_own_histogram(clock):
    metrics = metrics_with(Reader(), clock)
    metrics.observe_post("worker", 201, 0.003)
    metrics.observe_post("worker", 201, 0.2)
    metrics.observe_post("worker", 503, 1.5)
    text = asyncio.run(metrics.render(off_loop)).decode()
    (family,) = [f for f in text_string_to_metric_families(text) if f.name == "tasker_api_post_duration_seconds"]
    samples = {(s.name[len(family.name) :], tuple(sorted(s.labels.items()))): s.value for s in family.samples}
    assert samples[("_count", (("code", "201"), ("type", "worker")))] == 2
    assert samples[("_bucket", (("code", "201"), ("le", "0.005"), ("type", "worker")))] == 1
    assert samples[("_count", (("code", "503"), ("type", "worker")))] == 1
    assert "per api process" in family.documentation.lower()
