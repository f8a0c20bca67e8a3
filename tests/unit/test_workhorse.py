"""The work horse: handlers run in a child process that can be stopped, and whose faults are failed runs.

The handler module is tests.handlers.horse: each job's payload says what it does.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import select
import socket
import subprocess
import sys
import threading
import time

import pytest

from tasker.errors import HandlerModuleError, WorkHorseError
from tasker.manager.workhorse import Job, Outcome, RunState, WorkHorse, kill_group
from tests.helpers import ROOT, wait_for

HANDLER = "tests.handlers.horse"
GRACE = 0.5


def job(do: str, timeout: float | None = None, **payload) -> Job:
    return Job(7, "t-7", "horse", {"do": do, **payload}, ["console1", "console2"], "console1", 2, 3, timeout)


def gone(pid: int) -> bool:
    """Whether a process has ended (a zombie waiting for its parent counts as ended)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        with open("/proc/%d/stat" % pid) as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def failed(errmsg: str) -> Outcome:
    return Outcome(RunState.FAILED, 1, errmsg, None)


@pytest.fixture
def started() -> list[int]:
    """The process groups `on_start` reported, in order."""
    return []


@pytest.fixture
def horse(started):
    """A work horse with a persistent child, a short grace, and `on_start` into `started`."""
    horse = WorkHorse(HANDLER, {"wait": 0}, grace=GRACE, on_start=started.append)
    yield horse
    horse.close(kill=True)


def test_a_handler_runs_in_a_child_leading_its_own_group_and_sees_the_task(horse, started):
    outcome = horse.perform(job("echo"))
    assert outcome.state is RunState.SUCCEEDED and (outcome.errnr, outcome.errmsg) == (0, None)
    seen = outcome.payload
    assert seen["pid"] != os.getpid() and seen["pgid"] == seen["pid"] == started[0]
    assert seen["pgid"] != os.getpgid(0) and os.getsid(seen["pid"]) == seen["pid"]  # the manager's signals miss it
    del seen["pid"], seen["pgid"]
    assert seen == {
        "id": 7,
        "identifier": "t-7",
        "type": "horse",
        "endpoints": ["console1", "console2"],
        "settings": {"wait": 0},
        "run": 2,
        "task_id": 7,
        "endpoint": "console1",
        "attempts": 3,
        "response_run": 2,
    }


def test_the_persistent_child_serves_run_after_run(horse, started):
    for number in range(3):
        assert horse.perform(job("return", payload={"n": number})).payload == {"n": number}
    assert len(set(started)) == 1


def test_a_handler_that_sets_an_errnr_fails_with_it(horse):
    assert horse.perform(job("errnr")) == Outcome(RunState.FAILED, 32, "could not backup!", None)


def test_an_exception_fails_the_run_with_its_type_and_message_and_logs_the_traceback(horse, caplog):
    with caplog.at_level(logging.ERROR):
        outcome = horse.perform(job("raise"))
    assert outcome == failed("RuntimeError: disk full on console1")
    assert "task t-7 on console1: handler raised" in caplog.text
    assert "Traceback" in caplog.text and "raise make(response)" in caplog.text


def test_an_exception_whose_str_raises_still_gives_a_usable_errmsg(horse):
    outcome = horse.perform(job("unprintable"))
    assert outcome.state is RunState.FAILED and outcome.errmsg.startswith("Unprintable")


@pytest.mark.parametrize(
    "do, errmsg",
    [("bailout", "Bailout: no way"), ("interrupt", "KeyboardInterrupt"), ("exit", "SystemExit: 3")],
)
def test_a_base_exception_fails_the_run_and_the_child_goes_on(horse, started, do, errmsg):
    assert horse.perform(job(do)) == failed(errmsg)
    assert horse.perform(job("return", payload=1)).payload == 1
    assert started[0] == started[1]


RAISERS = """
class Custom(BaseException):
    pass


class Unshowable(BaseException):
    def __str__(self):
        raise KeyboardInterrupt("not even this")


class ExitingStr(Exception):
    def __str__(self):
        raise SystemExit(4)


RAISE = {
    "generator_exit": GeneratorExit,
    "custom": lambda: Custom("out of here"),
    "unshowable": Unshowable,
    "exiting_str": ExitingStr,
}


def handle_task(task, response):
    if task.payload == "ok":
        response.payload = "ok"
        return response
    raise RAISE[task.payload]()
"""


@pytest.fixture
def raisers(tmp_path, monkeypatch, started):
    """A work horse of a handler module that raises what its task's payload names."""
    (tmp_path / "tasker_test_raisers.py").write_text(RAISERS)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")])))
    horse = WorkHorse("tasker_test_raisers", {}, grace=GRACE, on_start=started.append)
    yield horse
    horse.close(kill=True)


@pytest.mark.parametrize(
    "payload, errmsg",
    [
        ("generator_exit", "GeneratorExit"),
        ("custom", "Custom: out of here"),
        ("unshowable", "Unshowable (its message cannot be shown: str() raised KeyboardInterrupt)"),
        ("exiting_str", "ExitingStr (its message cannot be shown: str() raised SystemExit)"),
    ],
)
def test_any_base_exception_even_one_whose_str_raises_fails_the_run_and_the_child_goes_on(
    raisers, started, payload, errmsg
):
    raising = Job(7, "t-7", "raisers", payload, ["console1"], "console1", 1, 1)
    assert raisers.perform(raising) == failed(errmsg)
    assert raisers.perform(dataclasses.replace(raising, payload="ok")).payload == "ok"
    assert started[0] == started[1], "the same child served both runs"


@pytest.mark.parametrize(
    "do, errmsg",
    [
        ("not_json", "handler set a payload that is not JSON: Object of type set is not JSON serializable"),
        ("nan", "handler set a payload that is not JSON: Out of range float values are not JSON compliant"),
        ("big_errnr", "handler set errnr to 1099511627776, not an int of 32 bits"),
        ("wrong_return", "handle_task returned int, not the taskResponse"),
        ("progress_bad", "ValueError: progress percent must be from 0 to 100, not 150.0"),
    ],
)
def test_a_handler_that_answers_nonsense_fails(horse, do, errmsg):
    assert horse.perform(job(do)) == failed(errmsg)


def test_a_handler_may_return_a_taskresponse_of_its_own(horse):
    assert horse.perform(job("new_response")) == Outcome(RunState.SUCCEEDED, 0, None, "new")


def test_a_result_over_max_result_fails_and_one_at_the_limit_does_not():
    horse = WorkHorse(HANDLER, {}, max_result=1000)
    try:
        assert horse.perform(job("big", size=998)).state is RunState.SUCCEEDED  # 1000 bytes with its quotes
        assert horse.perform(job("big", size=1000)) == failed(
            "result payload of 1002 bytes is over manager.max_result (1000 bytes)"
        )
    finally:
        horse.close()


def test_a_handler_that_exits_fails_and_the_next_run_gets_a_new_child(horse, started, caplog):
    assert horse.perform(job("os_exit")) == failed("handler process exited with status 3")
    assert "task t-7 on console1: handler process exited with status 3" in caplog.text
    assert horse.perform(job("return", payload="again")).payload == "again"
    assert started[0] != started[1]


def test_a_segfault_fails_the_run_with_signal_11(horse):
    assert horse.perform(job("segfault")) == failed("handler process died: signal 11 (SIGSEGV)")
    assert horse.perform(job("return")).state is RunState.SUCCEEDED


def test_a_handler_killed_by_sigkill_fails_the_run(horse):
    assert horse.perform(job("sigkill")) == failed("handler process was killed: signal 9 (SIGKILL)")


@pytest.mark.parametrize("payload", [{}, {"seconds": 1000}], ids=["python loop", "C call"])
def test_handler_stuck_in_a_loop_is_stopped_at_its_timeout(horse, payload):
    began = time.monotonic()
    outcome = horse.perform(job("sleep" if payload else "loop", timeout=1, **payload))
    assert outcome == Outcome(RunState.TIMED_OUT, 1, "timed out after 1 s", None)
    assert 1 <= time.monotonic() - began < 1 + GRACE + 1
    assert horse.perform(job("return", payload=2)).payload == 2


def test_a_handler_that_ignores_sigterm_is_killed_after_the_grace(horse, caplog):
    ignoring = threading.Event()
    horse.on_progress = lambda percent, message: ignoring.set()
    began = time.monotonic()
    outcome = horse.perform(job("ignore_sigterm", timeout=0.5))
    assert ignoring.is_set()  # the handler had its SIGTERM ignored before the timeout
    assert outcome == Outcome(RunState.TIMED_OUT, 1, "timed out after 0.5 s", None)
    assert 0.5 + GRACE <= time.monotonic() - began < 0.5 + GRACE + 1
    assert "still running after SIGTERM; sending SIGKILL" in caplog.text


def test_a_grandchild_is_killed_with_the_group_on_timeout(horse, tmp_path):
    pidfile = tmp_path / "grandchild.pid"
    outcome = horse.perform(job("grandchild", timeout=1, pidfile=str(pidfile)))
    assert outcome.state is RunState.TIMED_OUT
    grandchild = int(pidfile.read_text())
    wait_for(lambda: gone(grandchild), timeout=5, interval=0.02, what="the grandchild to be killed")


def test_cancel_from_another_thread_stops_the_run_as_cancelled(horse):
    progress = []
    running = threading.Event()
    horse.on_progress = lambda percent, message: (progress.append((percent, message)), running.set())
    cancelled = []
    canceller = threading.Thread(target=lambda: running.wait(10) and cancelled.append(horse.cancel()))
    canceller.start()
    outcome = horse.perform(job("progress_loop"))
    canceller.join()
    assert outcome == Outcome(RunState.CANCELLED, 1, "cancelled", None)
    assert progress == [(10.0, "started")] and cancelled == [True]
    assert horse.cancel() is False  # nothing in hand


def test_progress_reports_are_throttled(horse):
    progress = []
    horse.on_progress = lambda percent, message: progress.append((percent, message))
    assert horse.perform(job("progress_burst")).state is RunState.SUCCEEDED
    assert progress == [(0.0, "at 0")]


def drive(horse: WorkHorse, limit: float = 20.0) -> Outcome:
    """Collect the run in hand the way a manager's select loop does."""
    deadline = time.monotonic() + limit
    while True:
        outcome = horse.collect()
        if outcome is not None:
            return outcome
        now = time.monotonic()
        assert now < deadline, "the run did not end"
        check = horse.next_check()
        select.select([horse.fileno()], [], [], max(0.0, min(deadline, check or deadline) - now))


def test_a_run_can_be_driven_from_a_select_loop(horse):
    pgid = horse.begin(job("return", payload=5))
    assert horse.pgid == pgid and horse.next_check() is None
    assert drive(horse) == Outcome(RunState.SUCCEEDED, 0, None, 5)
    assert horse.pgid == pgid  # the persistent child waits for the next run
    assert horse.begin(job("loop", timeout=0.5)) == pgid and horse.next_check() is not None
    assert drive(horse).state is RunState.TIMED_OUT
    assert horse.pgid is None and gone(pgid)
    horse.begin(job("loop"))
    assert horse.cancel() is True
    assert drive(horse) == Outcome(RunState.CANCELLED, 1, "cancelled", None)


def test_closing_with_a_run_in_hand_needs_kill_and_then_kills_its_group(horse):
    pgid = horse.begin(job("loop"))
    with pytest.raises(WorkHorseError, match="a run is in hand"):
        horse.close()
    horse.close(kill=True)
    assert gone(pgid) and horse.collect() is None and horse.pgid is None


def test_close_with_kill_stops_the_run_in_hand_without_waiting_for_the_grace(started):
    horse = WorkHorse(HANDLER, {}, grace=30, on_progress=lambda percent, message: closer.start())
    closer = threading.Thread(target=horse.close, kwargs={"kill": True})
    began = time.monotonic()
    outcome = horse.perform(job("progress_loop"))
    closer.join()
    assert outcome == Outcome(RunState.CANCELLED, 1, "killed: the work horse is closing", None)
    assert time.monotonic() - began < 10
    with pytest.raises(WorkHorseError, match="closed"):
        horse.perform(job("return"))


def test_a_child_whose_starting_thread_ended_is_replaced_at_the_next_run(horse, started, caplog):
    first = threading.Thread(target=horse.perform, args=(job("return"),))
    first.start()
    first.join()  # PR_SET_PDEATHSIG follows the thread: the child gets SIGKILL now
    wait_for(lambda: gone(started[0]), timeout=5, interval=0.02, what="the child to die with its thread")
    assert horse.perform(job("return", payload=4)).payload == 4
    assert started[1] != started[0] and "ended idle: handler process was killed" in caplog.text


def test_close_ends_an_idle_child(horse, started):
    horse.perform(job("return"))
    horse.close()
    assert gone(started[0])
    with pytest.raises(WorkHorseError, match="closed"):
        horse.perform(job("return"))


def test_the_handlers_stdout_and_stderr_are_the_managers(capfd, horse):
    assert horse.perform(job("print")).payload == "printed"
    captured = capfd.readouterr()
    assert "to stdout from the handler" in captured.out and "to stderr from the handler" in captured.err


def test_a_module_that_cannot_be_imported_is_refused_at_start_and_fails_runs(caplog):
    horse = WorkHorse("tests.handlers.no_such_horse", {})
    try:
        with pytest.raises(HandlerModuleError, match="cannot import handler module tests.handlers.no_such_horse"):
            horse.start()
        outcome = horse.perform(job("return"))
        assert outcome.state is RunState.FAILED
        assert outcome.errmsg.startswith("cannot import handler module tests.handlers.no_such_horse: ")
    finally:
        horse.close()


def test_settings_that_are_not_json_are_refused():
    with pytest.raises(Exception, match="not JSON data"):
        WorkHorse(HANDLER, {"when": object()})


def test_a_fresh_child_per_run_gives_the_same_outcomes():
    started: list[int] = []
    horse = WorkHorse(HANDLER, {"wait": 0}, grace=GRACE, fresh=True, on_start=started.append)
    try:
        horse.start()
        assert horse.perform(job("return", payload=1)).payload == 1
        assert horse.perform(job("raise")) == failed("RuntimeError: disk full on console1")
        assert horse.perform(job("os_exit")) == failed("handler process exited with status 3")
        assert horse.perform(job("loop", timeout=0.5)).state is RunState.TIMED_OUT
        assert len(set(started)) == 4 and all(gone(pgid) for pgid in started)
    finally:
        horse.close()


HELPER = """
import sys
from tasker.manager.workhorse import Job, WorkHorse
horse = WorkHorse("tests.handlers.horse", {}, on_start=lambda pgid: print(pgid, flush=True))
horse.perform(Job(1, "t-1", "horse", {"do": "sleep", "seconds": 1000}, ["e"], "e", 1, 1, None))
"""


def test_the_child_dies_when_the_manager_side_process_dies():
    helper = subprocess.Popen([sys.executable, "-c", HELPER], cwd=ROOT, stdout=subprocess.PIPE)
    try:
        assert select.select([helper.stdout], [], [], 20)[0], "the helper did not start a run"
        child = int(helper.stdout.readline())
        assert not gone(child)
    finally:
        helper.kill()
        helper.wait()
        helper.stdout.close()
    wait_for(lambda: gone(child), timeout=5, interval=0.02, what="the child to die with its manager")


def spawn_child(manager_pid: int) -> tuple[subprocess.Popen, socket.socket]:
    ours, theirs = socket.socketpair()
    command = [sys.executable, "-m", "tasker.manager.workhorse_child", "--manager-pid", str(manager_pid)]
    command += ["--module", HANDLER, "--fd", str(theirs.fileno())]
    child = subprocess.Popen(command, cwd=ROOT, pass_fds=[theirs.fileno()], start_new_session=True)
    theirs.close()
    ours.settimeout(20)
    return child, ours


def test_messages_between_manager_and_child_are_lines_of_json():
    child, sock = spawn_child(os.getpid())
    with sock, sock.makefile("rb") as lines:
        assert json.loads(lines.readline()) == {"op": "ready"}
        run = {"op": "run", "seq": 5, "task_id": 1, "identifier": "t-1", "type": "horse", "endpoints": ["e"]}
        run.update(
            {"endpoint": "e", "run": 1, "attempts": 1, "settings": {}, "payload": {"do": "return", "payload": [1]}}
        )
        sock.sendall(json.dumps(run).encode() + b"\n")
        result = {"op": "result", "seq": 5, "errnr": 0, "errmsg": None, "traceback": None, "payload": [1]}
        assert json.loads(lines.readline()) == result
        sock.shutdown(socket.SHUT_WR)  # the manager closing its end: the child exits
        assert child.wait(timeout=20) == 0


def test_a_child_whose_parent_is_not_the_manager_named_exits_at_once():
    child, sock = spawn_child(1)
    with sock, sock.makefile("rb") as lines:
        assert lines.readline() == b""
    assert child.wait(timeout=20) == 3


def test_kill_group_kills_a_work_horse_group_and_spares_others(horse):
    pgid = horse.perform(job("echo")).payload["pgid"]
    other = subprocess.Popen(["sleep", "1000"], start_new_session=True)
    try:
        assert kill_group(other.pid) is False
        assert other.poll() is None
    finally:
        other.kill()
        other.wait()
    assert kill_group(pgid) is True
    wait_for(lambda: gone(pgid), timeout=5, interval=0.02, what="the killed group's leader to die")
    assert horse.perform(job("return", payload=3)).payload == 3  # a new child
    with pytest.raises(ValueError):
        kill_group(os.getpgid(0))
    with pytest.raises(ValueError):
        kill_group(0)


def test_kill_group_of_a_group_that_is_gone_is_false(horse):
    pgid = horse.perform(job("echo")).payload["pgid"]
    horse.close()
    assert kill_group(pgid) is False  # gone: nothing to kill, and no error
