"""Delivery through real processes: receipt, the deadline, stopping and killing managers."""

from __future__ import annotations

import signal

import pytest

from tests.helpers import unique, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def responses(api, task_type, identifier):
    return {r["endpoint"]: r for r in api.get(task_type, identifier).json["taskResponseList"]}


def test_an_endpoint_that_never_answers_makes_the_task_incomplete_and_keeps_the_live_response(fresh_cluster):
    fresh_cluster.manager("live-1")
    _, api = fresh_cluster.api(18882, env={"TASKER_TEST_TIMEOUT": "2"})
    identifier, ghost = unique("incomplete"), unique("ghost")
    assert api.post("worker", {"identifier": identifier, "endpoints": ["live-1", ghost]}).status == 201
    body = api.wait_status("worker", identifier, ("INCOMPLETE",), timeout=20)
    assert body["task"]["status"] == "INCOMPLETE"
    live = wait_for(
        lambda: (
            responses(api, "worker", identifier).get("live-1", {}).get("status") == 1
            and responses(api, "worker", identifier)["live-1"]
        ),
        20,
        what="the live endpoint's result",
    )
    assert live["payload"] == {"yeah": 1234123, "yiya": "yippie"}

    missing = responses(api, "worker", identifier)[ghost]
    assert (missing["state"], missing["status"], missing["errnr"], missing["attempts"]) == ("missing", 1, 1, 0)
    assert missing["errmsg"] == "not received before its delivery deadline"
    fresh_cluster.manager(ghost)  # its message expired in the queue at the deadline
    assert responses(api, "worker", identifier)[ghost] == missing, "a missing run never starts"
    assert api.get("worker", identifier).json["task"]["status"] == "INCOMPLETE"


def test_receipt_is_recorded_while_another_task_runs(fresh_cluster):
    fresh_cluster.manager("busy-1", env={"TASKER_TEST_HANDLER_WAIT": "3"})
    _, api = fresh_cluster.api(18883)
    first, second = unique("first"), unique("second")
    for identifier in (first, second):
        assert api.post("worker", {"identifier": identifier, "endpoints": ["busy-1"]}).status == 201
    api.wait_state("worker", first, "busy-1", ("running",), timeout=10)
    received = api.wait_state("worker", second, "busy-1", ("received",), timeout=10)
    assert received["status"] == 0 and received["attempts"] == 1
    assert responses(api, "worker", first)["busy-1"]["state"] == "running", "the first task was still running"
    api.wait_status("worker", second, ("DONE",), timeout=20)


def test_sigterm_finishes_and_records_the_task_in_hand_then_exits_0(fresh_cluster):
    manager = fresh_cluster.manager("graceful-1", env={"TASKER_TEST_HANDLER_WAIT": "2"})
    _, api = fresh_cluster.api(18884)
    identifier = unique("term")
    api.post("worker", {"identifier": identifier, "endpoints": ["graceful-1"]})
    api.wait_state("worker", identifier, "graceful-1")
    manager.signal(signal.SIGTERM)
    assert manager.popen.wait(20) == 0
    body = api.get("worker", identifier).json
    assert body["task"]["status"] == "DONE"
    assert body["taskResponseList"][0]["status"] == 1 and body["taskResponseList"][0]["attempts"] == 1


def test_tasks_a_stopped_manager_held_but_had_not_started_go_back_to_the_queue(fresh_cluster):
    manager = fresh_cluster.manager("held-1", env={"TASKER_TEST_HANDLER_WAIT": "2"})
    _, api = fresh_cluster.api(18886)
    running, waiting = unique("running"), unique("waiting")
    for identifier in (running, waiting):
        api.post("worker", {"identifier": identifier, "endpoints": ["held-1"]})
    api.wait_state("worker", running, "held-1")
    api.wait_state("worker", waiting, "held-1", ("received",))
    manager.signal(signal.SIGTERM)
    assert manager.popen.wait(20) == 0
    assert api.get("worker", running).json["task"]["status"] == "DONE"
    (held,) = api.get("worker", waiting).json["taskResponseList"]
    assert (held["status"], held["state"]) == (0, "received"), "received, not started"

    fresh_cluster.manager("held-1", env={"TASKER_TEST_HANDLER_WAIT": "0.1"})
    (response,) = api.wait_status("worker", waiting, ("DONE",), timeout=30)["taskResponseList"]
    assert response["status"] == 1


def test_a_manager_killed_mid_task_performs_it_again_when_back(fresh_cluster):
    manager = fresh_cluster.manager("killed-1", env={"TASKER_TEST_HANDLER_WAIT": "30"})
    _, api = fresh_cluster.api(18885)
    identifier = unique("kill")
    api.post("worker", {"identifier": identifier, "endpoints": ["killed-1"]})
    api.wait_state("worker", identifier, "killed-1")
    manager.signal(signal.SIGKILL)
    manager.popen.wait(10)
    fresh_cluster.manager("killed-1", env={"TASKER_TEST_HANDLER_WAIT": "0.2"})
    body = api.wait_status("worker", identifier, ("DONE",), timeout=30)
    (response,) = body["taskResponseList"]
    assert (response["status"], response["attempts"], response["state"]) == (1, 2, "succeeded")
