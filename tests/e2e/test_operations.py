"""Operating tasks: retry only what failed, keep every earlier run, cancel for real."""

from __future__ import annotations

import time

import pytest

from tests.helpers import queue_depth, unique, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
JSON = {"Content-Type": "application/json"}  # retry and cancel take JSON only, even without a body
ENDPOINTS = ["ops-a", "ops-b", "ops-c"]


@pytest.fixture(scope="module")
def operated(cluster):
    """An API, and a `flaky` manager on each of three endpoints."""
    for endpoint in ENDPOINTS:
        cluster.manager(endpoint, "flaky")
    _, api = cluster.api(19070)
    return api


def settled(api, identifier):
    return api.wait_status("flaky", identifier, ("DONE", "INCOMPLETE", "CANCELLED"))


def responses(api, identifier, query=""):
    answer = api.request("GET", "/flaky/%s%s" % (identifier, query))
    assert answer.status == 200, answer
    return {response["endpoint"]: response for response in answer.json["taskResponseList"]}


def test_a_retry_of_the_one_failed_endpoint_reruns_only_it_and_keeps_the_others(operated, tmp_path):
    api, identifier = operated, unique("retry")
    payload = {"dir": str(tmp_path), "fail_on": ["ops-b"]}
    assert api.post("flaky", {"identifier": identifier, "payload": payload, "endpoints": ENDPOINTS}).status == 201
    settled(api, identifier)
    first = responses(api, identifier)
    assert [first[e]["state"] for e in ENDPOINTS] == ["succeeded", "failed", "succeeded"]

    answer = api.request("POST", "/flaky/%s/retry" % identifier, headers=JSON)
    assert answer.status == 202 and answer.json["status"] in ("CREATED", "SENT"), answer
    wait_for(lambda: responses(api, identifier)["ops-b"]["state"] == "succeeded", 30, 0.1, "the retried run")
    after = responses(api, identifier, "?runs=all")
    assert (after["ops-b"]["run"], after["ops-b"]["attempts"], after["ops-b"]["errnr"]) == (2, 1, 0)
    assert [(run["run"], run["state"], run["errnr"]) for run in after["ops-b"]["runs"]] == [(1, "failed", 7)]
    for endpoint in ("ops-a", "ops-c"):  # not run again: the same run, the same result
        assert (after[endpoint]["run"], after[endpoint]["payload"]) == (1, first[endpoint]["payload"])
        assert after[endpoint]["runs"] == []
    assert api.get("flaky", identifier).json["task"]["status"] == "DONE"


def test_a_retry_is_refused_when_nothing_is_selected_or_a_selected_endpoint_still_runs(operated, tmp_path):
    api, identifier = operated, unique("retry-refused")
    payload = {"dir": str(tmp_path), "seconds": 3}
    assert api.post("flaky", {"identifier": identifier, "payload": payload, "endpoints": ["ops-a"]}).status == 201
    running = api.request("POST", "/flaky/%s/retry" % identifier, {"endpoints": ["ops-a"]})
    assert running.status == 409 and "still" in running.json["error"]["message"], running
    settled(api, identifier)
    nothing = api.request("POST", "/flaky/%s/retry" % identifier, {"endpoints": "failed"})
    assert nothing.status == 409 and "nothing to retry" in nothing.json["error"]["message"], nothing
    unknown = api.request("POST", "/flaky/%s/retry" % identifier, {"endpoints": ["ops-z"]})
    assert unknown.status == 400 and "ops-z" in unknown.json["error"]["message"], unknown
    assert api.request("POST", "/flaky/nope-%s/retry" % identifier, headers=JSON).status == 404


def test_after_run_makes_a_repeated_retry_safe(operated, tmp_path):
    api, identifier = operated, unique("retry-again")
    body = {"identifier": identifier, "payload": {"dir": str(tmp_path)}, "endpoints": ["ops-a", "ops-c"]}
    assert api.post("flaky", body).status == 201
    settled(api, identifier)
    retry = {"endpoints": ["ops-a"], "after_run": 1}
    assert api.request("POST", "/flaky/%s/retry" % identifier, retry).status == 202
    repeated = api.request("POST", "/flaky/%s/retry" % identifier, retry)
    assert repeated.status == 200, repeated
    settled(api, identifier)
    assert {e: r["run"] for e, r in responses(api, identifier).items()} == {"ops-a": 2, "ops-c": 1}


def test_a_cancel_skips_what_has_not_started_and_holds_when_the_managers_come_back(cluster, operated, tmp_path):
    api, identifier = operated, unique("cancel")
    endpoints = ["ops-x", "ops-y"]  # no manager yet: the runs wait in their queues
    body = {"identifier": identifier, "payload": {"dir": str(tmp_path), "fail_on": endpoints}, "endpoints": endpoints}
    assert api.post("flaky", body).status == 201
    cancelled = api.request("POST", "/flaky/%s/cancel" % identifier, headers=JSON)
    assert cancelled.status == 202 and cancelled.json["status"] == "CANCELLED", cancelled
    assert api.request("POST", "/flaky/%s/cancel" % identifier, headers=JSON).status == 202, "a repeated cancel is safe"
    for endpoint in endpoints:
        cluster.manager(endpoint, "flaky")
    # Each manager receives the cancelled run first and drops it unperformed; a task sent after
    # it is done only once that message was dealt with.
    later = unique("after-cancel")
    later_body = {"identifier": later, "payload": {"dir": str(tmp_path / "later")}, "endpoints": endpoints}
    (tmp_path / "later").mkdir()
    assert api.post("flaky", later_body).status == 201
    settled(api, later)
    assert all(queue_depth("tasker_test", "tasker.flaky.%s" % e) == 0 for e in endpoints)
    after = responses(api, identifier)
    assert {e: (r["state"], r["attempts"], r["errmsg"]) for e, r in after.items()} == {
        e: ("skipped", 0, "cancelled before it started") for e in endpoints
    }
    assert [path.name for path in tmp_path.iterdir()] == ["later"], "the handler never ran the cancelled task"
    assert api.get("flaky", identifier).json["task"]["status"] == "CANCELLED"

    retried = api.request("POST", "/flaky/%s/retry" % identifier, {"endpoints": "unfinished"})
    assert retried.status == 202 and "cancel_requested" not in retried.json, retried
    settled(api, identifier)
    assert {e: r["state"] for e, r in responses(api, identifier).items()} == {e: "failed" for e in endpoints}


def test_a_settled_task_that_was_never_cancelled_cannot_be_cancelled(operated, tmp_path):
    api, identifier = operated, unique("late-cancel")
    assert (
        api.post("flaky", {"identifier": identifier, "payload": {"dir": str(tmp_path)}, "endpoints": ["ops-c"]}).status
        == 201
    )
    settled(api, identifier)
    late = api.request("POST", "/flaky/%s/cancel" % identifier, headers=JSON)
    assert late.status == 409 and "never cancelled" in late.json["error"]["message"], late


def test_a_cancel_stops_a_running_handler_within_its_grace_and_skips_the_endpoint_waiting(operated, tmp_path):
    """ops-a runs a handler that would take a minute; ops-b waits behind another task."""
    api, identifier, blocker = operated, unique("cancel-running"), unique("blocker")
    slow = {"dir": str(tmp_path), "seconds": 60}
    assert api.post("flaky", {"identifier": blocker, "payload": slow, "endpoints": ["ops-b"]}).status == 201
    body = {"identifier": identifier, "payload": slow, "endpoints": ["ops-a", "ops-b"]}
    assert api.post("flaky", body).status == 201
    api.wait_state("flaky", identifier, "ops-a", ("running",))
    api.wait_state("flaky", identifier, "ops-b", ("received",))
    asked = time.monotonic()
    assert api.request("POST", "/flaky/%s/cancel" % identifier, headers=JSON).status == 202
    task = api.wait_status("flaky", identifier, ("CANCELLED",), timeout=10)
    stopped_after = time.monotonic() - asked
    found = responses(api, identifier)
    assert (found["ops-a"]["state"], found["ops-a"]["errmsg"]) == ("cancelled", "cancelled"), found["ops-a"]
    assert found["ops-b"]["state"] == "skipped"
    assert stopped_after < 1 + 1 + 2, "manager.cancel_grace (1 s) plus a tick, plus 2 s at most"
    assert task["task"]["settled"] is True
    assert api.request("POST", "/flaky/%s/cancel" % blocker, headers=JSON).status == 202
    api.wait_status("flaky", blocker, ("CANCELLED",), timeout=10)


def test_a_handlers_progress_shows_within_a_second_and_a_new_run_starts_without(cluster, operated):
    api, identifier = operated, unique("progress")
    cluster.manager("prog-1", "horse")
    body = {"identifier": identifier, "payload": {"do": "progress_loop"}, "endpoints": ["prog-1"]}
    assert api.post("horse", body).status == 201
    running = api.wait_state("horse", identifier, "prog-1", ("running",))
    reported = time.monotonic()
    shown = wait_for(lambda: _progress(api, identifier), 5, 0.05, "the progress to show")
    assert shown == (10, "started") and time.monotonic() - reported < 1.5, running
    assert api.request("POST", "/horse/%s/cancel" % identifier, headers=JSON).status == 202
    api.wait_status("horse", identifier, ("CANCELLED",), timeout=10)
    assert api.request("POST", "/horse/%s/retry" % identifier, {"endpoints": "all"}).status == 202
    fresh = api.response("horse", identifier, "prog-1")
    assert (fresh["run"], fresh["progress"], fresh["progress_message"]) == (2, None, None)
    assert api.request("POST", "/horse/%s/cancel" % identifier, headers=JSON).status == 202
    api.wait_status("horse", identifier, ("CANCELLED",), timeout=10)


def _progress(api, identifier):
    response = api.response("horse", identifier, "prog-1")
    return (response["progress"], response["progress_message"]) if response["progress"] is not None else None


@pytest.mark.parametrize("action", ["loop", "ignore_sigterm"])
def test_a_cancel_stops_a_handler_stuck_in_a_loop(cluster, operated, action):
    """`loop` spins in `while True: pass` and ends at SIGTERM, after manager.cancel_grace (1 s);
    `ignore_sigterm` ignores it too and ends at SIGKILL, as long again after."""
    api, identifier = operated, unique("stuck-" + action.replace("_", "-"))
    endpoint = "stuck-%s" % action.replace("_", "-")
    cluster.manager(endpoint, "horse")
    assert (
        api.post("horse", {"identifier": identifier, "payload": {"do": action}, "endpoints": [endpoint]}).status == 201
    )
    api.wait_state("horse", identifier, endpoint, ("running",))
    asked = time.monotonic()
    assert api.request("POST", "/horse/%s/cancel" % identifier, headers=JSON).status == 202
    api.wait_status("horse", identifier, ("CANCELLED",), timeout=15)
    stopped_after = time.monotonic() - asked
    assert api.response("horse", identifier, endpoint)["state"] == "cancelled"
    grace = 1 if action == "loop" else 2
    assert stopped_after < grace + 2, "stopped %.1f s after the cancel" % stopped_after
