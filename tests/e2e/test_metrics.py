"""`GET /metrics` of real API processes, after managers did real work: what a scrape says is
what the database holds, from any API process; who may scrape; JSON logs without secrets."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import delete, func, select

from tasker.clock import utcnow
from tasker.lifecycle.liveness import is_alive
from tasker.status import OPEN_STATES, ResponseState, TaskStatus
from tasker.storage.models import REGISTRATION, RESPONSE, TASK
from tests.helpers import Api, Cluster, process_env, unique, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
PORT, OTHER_PORT, SECOND_PORT, SECURED_PORT, OPEN_PORT, JSON_PORT = 19130, 19131, 19137, 19132, 19133, 19134
ENDPOINTS = ["metrics1", "metrics2"]
WINDOW = 600.0  # api.metrics.window of the test run mode
# Figures of the process itself, or of the moment a reading was made: not the same from two APIs.
OWN = ("tasker_api_post_duration_seconds", "tasker_fleet_read_duration_seconds", "process_")
API_TOKEN, SCRAPE_TOKEN = "api-token-4f1c9e2b7d", "scrape-token-8a3e5c1f0b"


@pytest.fixture(scope="module")
def fleet(test_config, log_dir, database):
    """Managers of worker and failing on endpoints of this module's own; their registrations are
    deleted once they stopped."""
    processes = Cluster(log_dir, process_env(TASKER_TEST_HANDLER_WAIT="0"))
    for endpoint in ENDPOINTS:
        processes.manager(endpoint, "worker")
    processes.manager(ENDPOINTS[0], "failing", env={"TASKER_TEST_LOG_FORMAT": "json"})
    yield processes
    processes.stop_all()
    with database.connection() as connection:
        connection.execute(delete(REGISTRATION).where(REGISTRATION.c.endpoint.in_(ENDPOINTS)))


@pytest.fixture(scope="module")
def api(fleet) -> Api:
    return fleet.api(PORT)[1]


@pytest.fixture(scope="module")
def worked(api) -> dict[str, list[str]]:
    """Tasks that ran to the end: worker tasks on both endpoints, failing ones on one."""
    posted: dict[str, list[str]] = {"worker": [], "failing": []}
    for task_type, count, endpoints in (("worker", 6, ENDPOINTS), ("failing", 2, ENDPOINTS[:1])):
        for _ in range(count):
            identifier = unique("metrics")
            answer = api.post(task_type, {"identifier": identifier, "endpoints": endpoints})
            assert answer.status == 201, answer
            posted[task_type].append(identifier)
    for task_type, identifiers in posted.items():
        for identifier in identifiers:
            api.wait_status(task_type, identifier, ("DONE",), timeout=60)
    return posted


def scrape(api: Api, token: str | None = None) -> dict[str, dict[tuple, float]]:
    """Each sample of a scrape by name and sorted labels; a 200 in the text format is asserted."""
    headers = {"Authorization": "Bearer " + token} if token else None
    answer = api.request("GET", "/metrics", headers=headers)
    assert answer.status == 200, answer
    assert answer.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    samples: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(answer.raw.decode()):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def by(samples: dict[tuple, float], *names: str) -> dict[tuple, float]:
    """Samples keyed by the values of the labels `names`."""
    return {tuple(dict(labels)[name] for name in names): value for labels, value in samples.items()}


def database_figures(database) -> dict[str, dict[tuple, float]]:
    """What a scrape should say, counted straight from the tables."""
    now = utcnow()
    since = now - dt.timedelta(seconds=WINDOW)
    final = [state.value for state in ResponseState if state.final]
    with database.connection() as connection:
        count = func.count()
        tasks = connection.execute(select(TASK.c.type, TASK.c.status, count).group_by(TASK.c.type, TASK.c.status))
        settled = connection.execute(
            select(TASK.c.type, TASK.c.status, count)
            .where(TASK.c.status.in_(["DONE", "INCOMPLETE", "CANCELLED"]), TASK.c.last_modified_time >= since)
            .group_by(TASK.c.type, TASK.c.status)
        ).all()
        runs = select(TASK.c.type, RESPONSE.c.state, count).join(TASK, TASK.c.id == RESPONSE.c.task_id)
        runs_open = connection.execute(
            runs.where(RESPONSE.c.state.in_([s.value for s in OPEN_STATES])).group_by(TASK.c.type, RESPONSE.c.state)
        ).all()
        finished = connection.execute(
            runs.where(RESPONSE.c.state.in_(final), RESPONSE.c.last_modified_time >= since).group_by(
                TASK.c.type, RESPONSE.c.state
            )
        ).all()
        registrations = connection.execute(select(REGISTRATION)).all()
    in_flight = {(kind, status): n for kind, status, n in tasks if status in ("CREATED", "SENT")}
    alive: dict[tuple, float] = {}
    for row in registrations:
        alive.setdefault((row.type,), 0)
        alive[(row.type,)] += is_alive(row.last_seen_time, row.heartbeat_interval, now) is True
    return {
        "tasker_tasks_in_flight": in_flight,
        "tasker_window_tasks_settled": {(kind, status): n for kind, status, n in settled},
        "tasker_runs_open": {(kind, state): n for kind, state, n in runs_open},
        "tasker_window_runs_finished": {(kind, state): n for kind, state, n in finished},
        "tasker_endpoints_alive": alive,
        "tasker_outbox_tasks": {(): sum(n for (_, status), n in in_flight.items() if status == "CREATED")},
    }


def scraped_figures(samples: dict[str, dict[tuple, float]]) -> dict[str, dict[tuple, float]]:
    """The same figures, as a scrape gives them."""
    labels = {
        "tasker_tasks_in_flight": ("type", "status"),
        "tasker_window_tasks_settled": ("type", "status"),
        "tasker_runs_open": ("type", "state"),
        "tasker_window_runs_finished": ("type", "state"),
        "tasker_endpoints_alive": ("type",),
        "tasker_outbox_tasks": (),
    }
    return {name: by(samples.get(name, {}), *names) for name, names in labels.items()}


def test_a_scrape_counts_what_the_database_holds(api, worked, database):
    def agree():
        scraped, counted = scraped_figures(scrape(api)), database_figures(database)
        return scraped if scraped == counted else None

    figures = wait_for(agree, 30, 0.5, "a scrape that agrees with the database")
    assert figures["tasker_window_tasks_settled"][("worker", TaskStatus.DONE.value)] >= len(worked["worker"])
    assert figures["tasker_window_runs_finished"][("failing", "failed")] >= len(worked["failing"])
    assert figures["tasker_endpoints_alive"][("worker",)] >= len(ENDPOINTS)


def test_the_run_durations_are_those_of_the_runs_that_finished(api, worked, database):
    since = utcnow() - dt.timedelta(seconds=WINDOW)
    ran = ["succeeded", "failed", "timed_out", "cancelled"]
    query = (
        select(func.count())
        .select_from(RESPONSE.join(TASK, TASK.c.id == RESPONSE.c.task_id))
        .where(TASK.c.type == "worker", RESPONSE.c.state.in_(ran), RESPONSE.c.last_modified_time >= since)
    )

    def agree():
        with database.connection() as connection:
            runs = connection.execute(query).scalar_one()
        histogram = scrape(api)["tasker_window_run_duration_seconds_bucket"]
        total = by(histogram, "type", "le")[("worker", "+Inf")]
        return total if total == runs else None

    assert wait_for(agree, 30, 0.5, "the durations' count to be the runs'") >= 2 * len(worked["worker"])


def test_each_endpoint_shows_its_heartbeat(api, worked):
    samples = scrape(api)
    seen = by(samples["tasker_endpoint_last_seen_timestamp_seconds"], "type", "endpoint")
    assert {("worker", e) for e in ENDPOINTS} | {("failing", ENDPOINTS[0])} <= set(seen)
    registered = by(samples["tasker_endpoints_registered"], "type")
    assert registered[("worker",)] >= 2 and registered[("failing",)] >= 1
    assert samples["tasker_fleet_up"][()] == 1


def test_two_api_processes_give_the_same_fleet_figures(fleet, worked):
    # Without a cache, two scrapes made one after the other read the same moment (but for a
    # heartbeat in between: then they are made again).
    uncached = {"TASKER_TEST_METRICS_CACHE": "0"}
    first, second = fleet.api(OTHER_PORT, env=uncached)[1], fleet.api(SECOND_PORT, env=uncached)[1]

    def fleet_only(samples: dict) -> dict:
        return {name: values for name, values in samples.items() if not name.startswith(OWN)}

    def same():
        one, other = fleet_only(scrape(first)), fleet_only(scrape(second))
        return one if one == other else None

    figures = wait_for(same, 30, 0.1, "two API processes to give the same figures")
    assert figures["tasker_window_runs_finished"] and figures["tasker_endpoint_up"]


def test_post_latency_is_counted_by_the_process_that_answered(api, worked):
    counts = by(scrape(api)["tasker_api_post_duration_seconds_count"], "type", "code")
    assert counts[("worker", "201")] >= len(worked["worker"])
    assert counts[("failing", "201")] >= len(worked["failing"])


def test_metrics_want_a_token_and_a_metrics_token_is_good_for_them_only(fleet):
    env = {"TASKER_TEST_API_AUTH": "tokens", "TASKER_TEST_API_TOKENS": API_TOKEN}
    secured = fleet.api(SECURED_PORT, env=dict(env, TASKER_TEST_METRICS_TOKENS=SCRAPE_TOKEN))[1]
    refused = secured.request("GET", "/metrics")
    assert refused.status == 401 and refused.json["error"]["status"] == 401, refused
    assert scrape(secured, SCRAPE_TOKEN)["tasker_fleet_up"][()] == 1
    assert scrape(secured, API_TOKEN)["tasker_fleet_up"][()] == 1
    body = {"identifier": unique("scraper"), "endpoints": ENDPOINTS}
    headers = {"Authorization": "Bearer " + SCRAPE_TOKEN}
    assert secured.post("worker", body, headers=headers).status == 401

    opened = fleet.api(OPEN_PORT, env=dict(env, TASKER_TEST_METRICS_AUTH="none"))[1]
    assert scrape(opened)["tasker_fleet_up"][()] == 1
    assert opened.post("worker", body).status == 401


def test_json_logs_are_one_object_a_line_and_never_show_a_token(fleet, worked, log_dir):
    env = {"TASKER_TEST_API_AUTH": "tokens", "TASKER_TEST_API_TOKENS": API_TOKEN, "TASKER_TEST_LOG_FORMAT": "json"}
    process, api = fleet.api(JSON_PORT, env=env)
    api.token = API_TOKEN
    assert api.get("worker", API_TOKEN).status == 404  # a token in a path: the access log has the path
    wait_for(lambda: "/worker/" in process.log(), 10, 0.1, "the access log line")
    lines = [json.loads(text) for text in process.log().splitlines()]
    assert all({"time", "level", "logger", "message", "process"} <= set(line) for line in lines)
    assert API_TOKEN not in process.log()
    assert any(line["message"].startswith("404 GET /worker/***") for line in lines)

    failing = next(p for p in fleet.processes if "manager-failing" in p.log_path.name)
    identifier = worked["failing"][0]
    about = [json.loads(text) for text in failing.log().splitlines() if identifier in text]
    assert about and all((line["type"], line["endpoint"]) == ("failing", ENDPOINTS[0]) for line in about)
    assert any(line.get("task") == identifier for line in about)
