"""Limits on a task: its own time limit, a rollout a few endpoints at a time, an error budget."""

from __future__ import annotations

import time

import pytest

from tests.helpers import unique, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
ENDPOINTS = ["lim-a", "lim-b", "lim-c"]
DEADLINE = 3  # seconds to receive a task: shorter than a rollout of ENDPOINTS one at a time


@pytest.fixture(scope="module")
def limited(cluster):
    """An API with a delivery deadline of DEADLINE seconds, and a `flaky` manager on each endpoint."""
    for endpoint in ENDPOINTS:
        cluster.manager(endpoint, "flaky")
    _, api = cluster.api(19075, env={"TASKER_TEST_TIMEOUT": str(DEADLINE)})
    return api


def responses(api, identifier):
    answer = api.request("GET", "/flaky/%s" % identifier)
    assert answer.status == 200, answer
    return {response["endpoint"]: response for response in answer.json["taskResponseList"]}


def test_max_concurrency_one_runs_the_endpoints_one_after_another_past_the_delivery_deadline(limited, tmp_path):
    api, identifier = limited, unique("one-at-a-time")
    body = {
        "identifier": identifier,
        "payload": {"dir": str(tmp_path), "seconds": 1.5},
        "endpoints": ENDPOINTS,
        "max_concurrency": 1,
    }
    assert api.post("flaky", body).status == 201
    task = api.wait_status("flaky", identifier, ("DONE", "INCOMPLETE"), timeout=30)
    assert task["task"]["status"] == "DONE" and task["task"]["max_concurrency"] == 1, task
    found = responses(api, identifier)
    assert {e: r["state"] for e, r in found.items()} == {e: "succeeded" for e in ENDPOINTS}, "waiting is not missing"
    intervals = sorted((r["payload"]["started"], r["payload"]["ended"]) for r in found.values())
    for (_, ended), (started, _) in zip(intervals, intervals[1:], strict=False):
        assert started >= ended, "two endpoints ran the task at once: %s" % intervals
    assert intervals[-1][0] - intervals[0][0] > DEADLINE, "the last one started after the delivery deadline"


def test_a_manager_waiting_for_a_slot_runs_its_other_tasks_meanwhile(limited, tmp_path):
    api, rollout, other = limited, unique("slow-rollout"), unique("meanwhile")
    body = {
        "identifier": rollout,
        "payload": {"dir": str(tmp_path), "seconds": 4},
        "endpoints": ["lim-a", "lim-b"],
        "max_concurrency": "50%",
    }
    assert api.post("flaky", body).status == 201
    wait_for(lambda: "running" in {r["state"] for r in responses(api, rollout).values()}, 10, 0.05, "a first run")
    waiting = [e for e, r in responses(api, rollout).items() if r["state"] != "running"][0]
    assert (
        api.post("flaky", {"identifier": other, "payload": {"dir": str(tmp_path)}, "endpoints": [waiting]}).status
        == 201
    )
    api.wait_status("flaky", other, ("DONE",), timeout=10)
    assert responses(api, rollout)[waiting]["state"] == "received", "it still waits for the slot"
    assert api.wait_status("flaky", rollout, ("DONE",), timeout=30)["task"]["counts"]["succeeded"] == 2


def test_max_errors_zero_skips_the_rest_once_the_first_endpoint_failed(limited, tmp_path):
    api, identifier = limited, unique("error-budget")
    body = {
        "identifier": identifier,
        "payload": {"dir": str(tmp_path), "fail_on": ENDPOINTS, "seconds": 0.5},
        "endpoints": ENDPOINTS,
        "max_concurrency": 1,
        "max_errors": 0,
    }
    assert api.post("flaky", body).status == 201
    task = api.wait_status("flaky", identifier, ("DONE", "INCOMPLETE"), timeout=30)
    assert task["task"]["status"] == "DONE", task
    found = responses(api, identifier)
    assert sorted(r["state"] for r in found.values()) == ["failed", "skipped", "skipped"], found
    skipped = [r for r in found.values() if r["state"] == "skipped"]
    assert all(r["errmsg"].startswith("not started: 1 endpoints failed") for r in skipped), skipped
    assert len(list(tmp_path.iterdir())) == 1, "only the first endpoint ran the handler"


def test_a_failure_beyond_max_errors_skips_the_endpoints_still_queued_at_once(limited, tmp_path):
    """lim-q has no manager: its run stays queued until the failure on lim-a holds it back."""
    api, identifier = limited, unique("held-back")
    body = {
        "identifier": identifier,
        "payload": {"dir": str(tmp_path), "fail_on": ["lim-a"]},
        "endpoints": ["lim-a", "lim-q"],
        "max_errors": 0,
    }
    assert api.post("flaky", body).status == 201
    task = api.wait_status("flaky", identifier, ("DONE", "INCOMPLETE"), timeout=DEADLINE + 10)
    found = responses(api, identifier)
    assert task["task"]["status"] == "DONE", found
    assert (found["lim-a"]["state"], found["lim-q"]["state"]) == ("failed", "skipped"), "skipped, not missing"


def test_a_tasks_own_timeout_stops_its_handler_and_counts_as_content(limited, tmp_path):
    api, identifier = limited, unique("own-timeout")
    body = {"identifier": identifier, "payload": {"dir": str(tmp_path), "seconds": 60}, "endpoints": ["lim-c"]}
    assert api.post("flaky", dict(body, timeout=1)).status == 201
    started = time.monotonic()
    task = api.wait_status("flaky", identifier, ("DONE",), timeout=15)
    response = responses(api, identifier)["lim-c"]
    assert response["state"] == "timed_out", response
    assert time.monotonic() - started < 1 + 1 + 3, "the limit (1 s) and manager.cancel_grace (1 s), plus 3 s at most"
    assert task["task"]["timeout"] == 1
    assert api.post("flaky", dict(body, timeout=1)).status == 200, "the same task again"
    again = api.post("flaky", dict(body, timeout=2))
    assert again.status == 409, again
    assert api.post("flaky", body).status == 409, "a task without its limit is another task"
