"""Whether an endpoint's manager is alive, and what that does to a task's slots and to the
configuration: pure rules, checked without a database."""

from __future__ import annotations

import datetime as dt

import pytest

from tasker.api.endpoints import endpoint_view
from tasker.config import load_config
from tasker.errors import ConfigError
from tasker.lifecycle import DEAD_AFTER, Limits, RunRow, StartVerdict, dead_endpoints, decide_start, is_alive
from tasker.status import ResponseState as S
from tasker.storage import Registration

NOW = dt.datetime(2026, 1, 1, 12, 0, 0)
LATER = NOW + dt.timedelta(minutes=5)


def ago(seconds: float) -> dt.datetime:
    return NOW - dt.timedelta(seconds=seconds)


def test_a_manager_is_alive_while_seen_within_three_of_its_intervals():
    assert DEAD_AFTER == 3
    assert is_alive(ago(0), 10.0, NOW) is True
    assert is_alive(ago(30), 10.0, NOW) is True, "two beats late is still alive"
    assert is_alive(ago(31), 10.0, NOW) is False
    assert is_alive(ago(3), 1.0, NOW) is True and is_alive(ago(4), 1.0, NOW) is False, "its own interval counts"


def test_a_manager_without_an_interval_predates_heartbeats_and_cannot_be_told():
    assert is_alive(ago(3600), None, NOW) is None


def test_the_dead_endpoints_are_those_not_alive_or_not_registered_but_not_those_that_cannot_be_told():
    seen = {"fresh": (ago(5), 10.0), "silent": (ago(60), 10.0), "old": (ago(3600), None), "gone": None}
    assert dead_endpoints(seen, NOW) == {"silent", "gone"}


def rows(*states):
    return {"e%d" % number: RunRow(state, 1, 1, LATER) for number, state in enumerate(states, 1)}


def test_a_run_held_by_a_dead_manager_takes_no_slot_of_max_concurrency():
    limits = Limits(max_concurrency=1)
    running_elsewhere = rows(S.RECEIVED, S.RUNNING)
    assert decide_start(limits, "e1", 1, running_elsewhere) is StartVerdict.WAIT
    assert decide_start(limits, "e1", 1, running_elsewhere, dead=frozenset({"e2"})) is StartVerdict.GO
    assert decide_start(limits, "e1", 1, rows(S.RECEIVED, S.RUNNING, S.RUNNING), dead={"e2"}) is StartVerdict.WAIT


def test_a_dead_manager_changes_nothing_of_max_errors_or_of_a_run_not_to_start():
    failed = rows(S.RECEIVED, S.FAILED)
    assert decide_start(Limits(max_errors=0), "e1", 1, failed, dead={"e2"}) is StartVerdict.SKIP
    assert decide_start(Limits(max_concurrency=1), "e1", 1, rows(S.SUCCEEDED), dead={"e1"}) is StartVerdict.OVER


def registration(**changes) -> Registration:
    values = dict(
        type="worker",
        endpoint="console1",
        registered_time=ago(600),
        last_seen_time=ago(4),
        host="host1",
        pid=4242,
        version="1.0.0",
        running="deploy-1",
        queued=3,
        heartbeat_interval=2.0,
    )
    return Registration(**dict(values, **changes))


def test_an_endpoint_shows_its_times_as_the_api_does_and_whether_it_is_alive():
    assert endpoint_view(registration(), NOW) == {
        "type": "worker",
        "endpoint": "console1",
        "registered_at": "2026-01-01 11:50:00",
        "last_seen": "2026-01-01 11:59:56",
        "alive": True,
        "heartbeat_interval": 2.0,
        "host": "host1",
        "pid": 4242,
        "version": "1.0.0",
        "running": "deploy-1",
        "queued": 3,
    }
    assert endpoint_view(registration(last_seen_time=ago(7)), NOW)["alive"] is False
    older = endpoint_view(registration(heartbeat_interval=None, host=None, pid=None, version=None, queued=None), NOW)
    assert older["alive"] is None and older["host"] is None


BASE = """
task_types: [worker, %s]
manager:
  db:
    uri: "sqlite://"
%s"""


@pytest.mark.parametrize("name", ["endpoints", "events", "metrics", "ui", "health"])
def test_a_task_type_named_as_a_path_of_the_api_is_refused(tmp_path, name):
    (tmp_path / "x.config.yaml").write_text(BASE % (name, ""))
    with pytest.raises(ConfigError, match="task_types: '%s' is reserved for the API's own path /%s" % (name, name)):
        load_config("x", tmp_path)


def test_the_heartbeat_interval_defaults_to_ten_seconds_and_is_at_least_one(tmp_path):
    (tmp_path / "x.config.yaml").write_text(BASE % ("backup", ""))
    assert load_config("x", tmp_path).manager.heartbeat_interval == 10.0
    (tmp_path / "x.config.yaml").write_text(BASE % ("backup", "  heartbeat_interval: 0.5\n"))
    with pytest.raises(ConfigError, match="manager.heartbeat_interval must be at least 1 second"):
        load_config("x", tmp_path)
