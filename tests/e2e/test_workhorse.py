"""The work horse through real managers: a handler that dies, loops or overruns is an outcome."""

from __future__ import annotations

import signal

import pytest

from tests.helpers import alive, unique, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


@pytest.fixture(scope="module")
def horse_api(cluster):
    cluster.manager("horse-1", "horse", env={"TASKER_TEST_HORSE_TIMEOUT": "2"})
    _, api = cluster.api(18930)
    return api


def run(api, do, **payload):
    identifier = unique(do)
    task = {"identifier": identifier, "endpoints": ["horse-1"], "payload": dict(payload, do=do)}
    assert api.post("horse", task).status == 201
    return api.wait_state("horse", identifier, "horse-1", ("succeeded", "failed", "timed_out"), timeout=30)


@pytest.mark.parametrize(
    "do, errmsg",
    [
        ("segfault", "handler process died: signal 11 (SIGSEGV)"),
        ("os_exit", "handler process exited with status 3"),
        ("sigkill", "handler process was killed: signal 9 (SIGKILL)"),
        ("bailout", "Bailout: no way"),
        ("interrupt", "KeyboardInterrupt"),
        ("exit", "SystemExit: 3"),
        ("unprintable", "Unprintable (its message cannot be shown: str() raised RuntimeError)"),
    ],
)
def test_a_handler_that_dies_is_a_failed_run_and_the_manager_goes_on(horse_api, do, errmsg):
    response = run(horse_api, do)
    assert (response["state"], response["status"], response["errnr"]) == ("failed", 1, 1)
    assert errmsg in response["errmsg"]
    after = run(horse_api, "return", payload={"after": do})
    assert (after["state"], after["payload"]) == ("succeeded", {"after": do})


def test_a_handler_stuck_in_a_loop_is_stopped_at_its_types_time_limit(horse_api):
    response = run(horse_api, "loop")
    assert (response["state"], response["status"], response["errnr"]) == ("timed_out", 1, 1)
    assert response["errmsg"] == "timed out after 2 s"
    assert run(horse_api, "return", payload=1)["state"] == "succeeded"


def test_the_handler_runs_in_its_own_process_group_not_in_the_manager(horse_api, cluster):
    response = run(horse_api, "echo")
    manager = next(p for p in cluster.processes if "horse-1" in p.args)
    payload = response["payload"]
    assert payload["pid"] != manager.pid and payload["pgid"] == payload["pid"]
    assert (payload["run"], payload["attempts"], payload["endpoint"]) == (1, 1, "horse-1")


def test_a_manager_killed_mid_run_leaves_nothing_running_once_its_successor_takes_the_run(fresh_cluster, tmp_path):
    env = {"TASKER_TEST_HORSE_TIMEOUT": "3"}
    manager = fresh_cluster.manager("leftover-1", "horse", env=env)
    _, api = fresh_cluster.api(18931)
    identifier, pidfile = unique("leftover"), tmp_path / "grandchild.pid"
    task = {
        "identifier": identifier,
        "endpoints": ["leftover-1"],
        "payload": {"do": "grandchild", "pidfile": str(pidfile)},
    }
    assert api.post("horse", task).status == 201
    wait_for(pidfile.exists, 10, 0.05, "the handler's own child process")
    grandchild = int(pidfile.read_text())
    wait_for(lambda: pgid_recorded(api, identifier), 10, 0.1, "the run's process group in the database")
    manager.signal(signal.SIGKILL)
    manager.popen.wait(10)
    assert alive(grandchild), "the handler's child outlives a manager killed with SIGKILL"
    fresh_cluster.manager("leftover-1", "horse", env=env)
    wait_for(lambda: not alive(grandchild), 20, 0.1, "the successor to kill what the run left behind")
    response = api.wait_state("horse", identifier, "leftover-1", ("timed_out",), timeout=30)
    assert response["attempts"] == 2


def pgid_recorded(api, identifier) -> bool:
    """Whether the run is `running` in the database (its process group is recorded with it)."""
    response = api.response("horse", identifier, "leftover-1")
    return response is not None and response["state"] == "running"


@pytest.mark.slow
def test_a_result_over_the_databases_packet_limit_fails_its_run_and_the_manager_goes_on(fresh_cluster, database):
    with database.connection() as connection:
        limit = int(connection.exec_driver_sql("SELECT @@max_allowed_packet").scalar_one())
    fresh_cluster.manager("bigresult-1", "horse", env={"TASKER_TEST_MAX_RESULT": str(2 * limit)})
    _, api = fresh_cluster.api(19021)
    identifier = unique("big")
    task = {"identifier": identifier, "endpoints": ["bigresult-1"], "payload": {"do": "big", "size": limit + 1000}}
    assert api.post("horse", task).status == 201
    response = api.wait_state("horse", identifier, "bigresult-1", ("succeeded", "failed"), timeout=60)
    errmsg = "result too large for the database: %d bytes (max_allowed_packet is %d bytes)" % (limit + 1002, limit)
    assert (response["state"], response["errnr"], response["errmsg"]) == ("failed", 1, errmsg)
    after = {"identifier": unique("after"), "endpoints": ["bigresult-1"], "payload": {"do": "return", "payload": 1}}
    assert api.post("horse", after).status == 201
    assert api.wait_state("horse", after["identifier"], "bigresult-1", ("succeeded",))["payload"] == 1
