"""supervisord runs the API and one manager per (task type, endpoint), and restarts crashes."""

from __future__ import annotations

import os
import re
import signal
import subprocess

import pytest

from tests.helpers import BIN, ROOT, Api, Process, process_env, unique, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
PORT = 18886
PROGRAMS = [
    "api",
    "manager-backup-console1",
    "manager-backup-console2",
    "manager-horse-console1",
    "manager-worker-console1",
    "manager-worker-console2",
]


def run_supervisor(tmp_path, port: int, **env: str):
    """Start `bin/supervisord --mode test` in the foreground; yield its supervisorctl and var dir."""
    environ = process_env(TASKER_TEST_VAR=str(tmp_path / "var"), TASKER_TEST_API_PORT=str(port), **env)
    process = Process([str(BIN / "supervisord"), "--mode", "test", "--nodaemon"], environ, tmp_path / "supervisord.out")

    def ctl(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(BIN / "supervisorctl"), "--mode", "test", *args],
            cwd=ROOT,
            env=environ,
            capture_output=True,
            text=True,
            timeout=60,
        )

    yield ctl, tmp_path / "var"
    ctl("shutdown")
    assert process.popen.wait(60) == 0


@pytest.fixture
def supervisor(test_config, tmp_path):
    yield from run_supervisor(tmp_path, PORT)


@pytest.fixture
def slow_supervisor(test_config, tmp_path):
    """Handlers that take 4 s, so a test can act while one runs."""
    yield from run_supervisor(tmp_path, PORT + 1, TASKER_TEST_HANDLER_WAIT="4")


def statuses(ctl) -> dict[str, tuple[str, int]]:
    found = {}
    for line in ctl("status").stdout.splitlines():
        match = re.match(r"(\S+)\s+(\S+)(?:\s+pid (\d+))?", line)
        if match:
            found[match.group(1)] = (match.group(2), int(match.group(3) or 0))
    return found


def all_running(ctl) -> dict[str, tuple[str, int]] | None:
    found = statuses(ctl)
    return found if sorted(found) == PROGRAMS and all(s == "RUNNING" for s, _ in found.values()) else None


def wait_ready(ctl, port: int) -> dict[str, tuple[str, int]]:
    """Every program RUNNING, and the API answering: RUNNING only says it started a second ago."""
    running = wait_for(lambda: all_running(ctl), 60, 0.5, "every program RUNNING")
    wait_for(Api(port).healthy, 30, 0.2, "the API on port %d answering" % port)
    return running


def test_supervisor_runs_api_and_managers_and_restarts_a_crashed_manager(supervisor):
    ctl, var = supervisor
    running = wait_ready(ctl, PORT)
    api = Api(PORT)
    identifier = unique("supervised")
    assert api.post("worker", {"identifier": identifier, "endpoints": ["console1", "console2"]}).status == 201
    api.wait_status("worker", identifier, ("DONE",))

    crashed = running["manager-worker-console1"][1]
    os.kill(crashed, signal.SIGKILL)
    restarted = wait_for(
        lambda: (lambda s: s if s and s["manager-worker-console1"][1] != crashed else None)(all_running(ctl)),
        60,
        0.5,
        "the crashed manager back",
    )
    assert restarted["manager-worker-console1"][0] == "RUNNING"

    stopped = ctl("stop", "manager-worker-console2")
    assert "stopped" in stopped.stdout, stopped.stdout + stopped.stderr
    assert statuses(ctl)["manager-worker-console2"][0] == "STOPPED"
    assert (var / "log" / "manager-worker-console1.log").read_text().count("consuming tasker.worker.console1") >= 2
    assert (var / "log" / "api.log").exists() and (var / "log" / "supervisord.log").exists()


def test_a_manager_killed_mid_task_is_restarted_by_supervisor_and_performs_it_again(slow_supervisor):
    ctl, var = slow_supervisor
    running = wait_ready(ctl, PORT + 1)
    api = Api(PORT + 1)
    identifier = unique("killed")
    assert api.post("worker", {"identifier": identifier, "endpoints": ["console1"]}).status == 201
    api.wait_state("worker", identifier, "console1")
    os.kill(running["manager-worker-console1"][1], signal.SIGKILL)

    (response,) = api.wait_status("worker", identifier, ("DONE",), timeout=60)["taskResponseList"]
    assert (response["attempts"], response["status"], response["state"]) == (2, 1, "succeeded")


def test_supervisorctl_stop_lets_the_manager_finish_and_record_its_task(slow_supervisor):
    ctl, var = slow_supervisor
    wait_ready(ctl, PORT + 1)
    api = Api(PORT + 1)
    identifier = unique("stopped")
    assert api.post("worker", {"identifier": identifier, "endpoints": ["console2"]}).status == 201
    api.wait_state("worker", identifier, "console2")

    stopped = ctl("stop", "manager-worker-console2")
    assert "stopped" in stopped.stdout, stopped.stdout + stopped.stderr
    (response,) = api.get("worker", identifier).json["taskResponseList"]
    assert response["status"] == 1 and response["attempts"] == 1, "recorded before the manager exited"
    assert "stopped: manager-worker-console2 (exit status 0)" in (var / "log" / "supervisord.log").read_text()


def test_supervisorctl_stop_does_not_signal_the_processes_a_handler_started(supervisor):
    ctl, var = supervisor
    wait_ready(ctl, PORT)
    api = Api(PORT)
    identifier = unique("deploy")
    task = {"identifier": identifier, "endpoints": ["console1"], "payload": {"do": "deploy", "seconds": 3}}
    assert api.post("horse", task).status == 201
    api.wait_state("horse", identifier, "console1")
    stopped = ctl("stop", "manager-horse-console1")
    assert "stopped" in stopped.stdout, stopped.stdout + stopped.stderr
    response = api.response("horse", identifier, "console1")
    assert response["state"] == "succeeded", response
    assert response["payload"] == {"returncode": 0}, "the deploy's `sleep` ran to its end, unsignalled"
