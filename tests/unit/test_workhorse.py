"""The work horse: handlers run in a child process that can be stopped, and whose faults are failed runs.

The handler module is tests.handlers.horse: each job's payload says what it does.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import resource
import select
import socket
import subprocess
import sys
import threading
import time

import pytest

from tasker.errors import HandlerModuleError, WorkHorseError
from tasker.manager.workhorse import Job, Outcome, RunOutput, RunState, WorkHorse, kill_group
from tasker.manager.workhorse_output import OutputKeeper
from tests.handlers.horse import FAKE_RESULT, flood_block
from tests.helpers import ROOT, wait_for

HANDLER = "tests.handlers.horse"
GRACE = 0.5


def job(do: str, timeout: float | None = None, **payload) -> Job:
    return Job(7, "t-7", "horse", {"do": do, **payload}, ["console1", "console2"], "console1", 2, 3, timeout)


def gone(pid: int) -> bool:
    """Whether a process has ended, all its threads (a zombie waiting for its parent counts as ended)."""
    try:
        os.kill(pid, 0)
        threads = os.listdir("/proc/%d/task" % pid)
    except (ProcessLookupError, FileNotFoundError):
        return True
    return threads == [str(pid)] and _state(pid) in ("Z", None)


def _state(pid: int) -> str | None:
    try:
        with open("/proc/%d/stat" % pid) as stat:
            return stat.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return None


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


def test_cancel_from_another_thread_stops_the_run_as_cancelled_after_the_grace(horse):
    progress = []
    running = threading.Event()
    horse.on_progress = lambda percent, message: (progress.append((percent, message)), running.set())
    cancelled = []
    canceller = threading.Thread(
        target=lambda: running.wait(10) and cancelled.append((horse.cancel(), time.monotonic()))
    )
    canceller.start()
    outcome = horse.perform(job("progress_loop"))
    ended = time.monotonic()
    canceller.join()
    assert outcome == Outcome(RunState.CANCELLED, 1, "cancelled", None)
    assert progress == [(10.0, "started")] and cancelled[0][0] is True
    assert GRACE <= ended - cancelled[0][1] < GRACE + 1  # the horse's grace, then SIGTERM
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
    assert horse.cancel(grace=0) is True  # no grace: SIGTERM at once
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
        assert horse.perform(job("mixed")).output.text.startswith("one\ntwo\nthree\n")
        assert len(set(started)) == 5 and all(gone(pgid) for pgid in started)
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


def run_message(seq: int, payload: dict) -> bytes:
    run = {"op": "run", "seq": seq, "task_id": 1, "identifier": "t-1", "type": "horse", "endpoints": ["e"]}
    run.update({"endpoint": "e", "run": 1, "attempts": 1, "settings": {}, "payload": payload})
    return json.dumps(run).encode() + b"\n"


def read_until(lines, op: str) -> list[dict]:
    """The child's messages up to the first with `op`, that one included."""
    messages = [json.loads(lines.readline())]
    while messages[-1]["op"] != op:
        messages.append(json.loads(lines.readline()))
    return messages


def test_messages_between_manager_and_child_are_lines_of_json():
    child, sock = spawn_child(os.getpid())
    with sock, sock.makefile("rb") as lines:
        assert json.loads(lines.readline()) == {"op": "ready"}
        sock.sendall(run_message(5, {"do": "return", "payload": [1]}))
        result = {"op": "result", "seq": 5, "errnr": 0, "errmsg": None, "traceback": None, "payload": [1]}
        assert json.loads(lines.readline()) == result

        sock.sendall(run_message(6, {"do": "print"}))
        *output, result = read_until(lines, "result")
        assert {message["op"] for message in output} == {"output"} and {m["seq"] for m in output + [result]} == {6}
        assert (
            "".join(message["data"] for message in output) == "to stdout from the handler\nto stderr from the handler\n"
        )

        sock.sendall(b'{"op": "cancel", "seq": 6}\n')  # of a run that has ended: ignored
        sock.sendall(run_message(7, {"do": "cancelled_flag"}))
        assert read_until(lines, "result")[-1]["payload"] is False

        sock.sendall(run_message(8, {"do": "cooperative"}))
        assert read_until(lines, "progress")[-1]["message"] == "waiting"
        sock.sendall(b'{"op": "cancel", "seq": 8}\n')
        *output, result = read_until(lines, "result")
        assert "".join(message["data"] for message in output if message["op"] == "output").endswith("stopping\n")
        assert (result["errnr"], result["errmsg"]) == (5, "stopped early")

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


# Output -------------------------------------------------------------------------------------------


def flood(blocks: int, size: int) -> str:
    """What the "flood" action writes."""
    return "".join(flood_block(number, size) for number in range(blocks))


def drive_until(horse: WorkHorse, condition, limit: float = 10.0) -> None:
    """Collect the run in hand, as a manager's loop does, until `condition()` holds; the run goes on."""
    deadline = time.monotonic() + limit
    while not condition():
        assert horse.collect() is None, "the run ended"
        assert time.monotonic() < deadline, "timed out waiting for %s" % condition
        select.select([horse.fileno()], [], [], 0.05)


def test_stdout_stderr_a_subprocess_and_logging_are_the_runs_output_in_order(horse, capfd):
    outcome = horse.perform(job("mixed"))
    assert outcome.payload == "printed"
    one, two, three, four, five = outcome.output.text.splitlines()
    assert (one, two, three, five) == ("one", "two", "three", "five")
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO horse: four", four)  # DEBUG left out
    assert outcome.output == RunOutput(outcome.output.text, len(outcome.output.text.encode()), False)
    assert capfd.readouterr() == ("", "")  # none of it on the manager's own stdout and stderr
    assert horse.perform(job("return", payload=1)).output == RunOutput()  # the next run starts afresh


def test_output_over_max_output_keeps_its_start_and_end_around_a_marker():
    horse = WorkHorse(HANDLER, {}, max_output=300)
    try:
        written = flood(10, 100)
        kept = written[:150] + "\n[... 700 bytes of output left out ...]\n" + written[-150:]
        assert horse.perform(job("flood", blocks=10, block=100)).output == RunOutput(kept, 1000, True)
        assert horse.perform(job("flood", blocks=3, block=100)).output == RunOutput(flood(3, 100), 300, False)
    finally:
        horse.close()


def test_a_50_mb_output_completes_and_only_max_output_of_it_is_kept():
    horse = WorkHorse(HANDLER, {}, max_output=2**20)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB
    try:
        outcome = horse.perform(job("flood", blocks=50, block=1_000_000))
    finally:
        horse.close()
    left_out = "\n[... %d bytes of output left out ...]\n" % (50_000_000 - 2**20)
    kept = flood_block(0, 1_000_000)[: 2**19] + left_out + flood_block(49, 1_000_000)[-(2**19) :]
    assert outcome.payload == "flooded" and outcome.output == RunOutput(kept, 50_000_000, True)
    # Holding the output, or a good part of it, would have raised the peak by 50 MB at least.
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 30 * 1024


def test_output_can_be_watched_and_taken_while_the_run_goes_on_and_the_rest_after_it(horse):
    assert horse.output_so_far() is None and horse.take_output() == ""
    horse.begin(job("cooperative"))
    drive_until(horse, lambda: horse.output_so_far().size > 0)
    assert horse.output_so_far() == RunOutput("waiting\n", 8, False)
    assert horse.take_output() == "waiting\n" and horse.take_output() == ""
    horse.cancel()
    outcome = drive(horse)
    assert outcome.output == RunOutput("waiting\nstopping\n", 17, False)
    assert horse.output_so_far() is None  # no run in hand
    assert horse.take_output() == "stopping\n" and horse.take_output() == ""


def test_the_pieces_taken_make_the_kept_text_and_are_cut_between_characters_only():
    keeper = OutputKeeper(40)
    written = ["ab\u20ac", "\U0001f600" * 5, "cd\n", "\u00e9" * 20, "end"]  # 71 bytes of UTF-8
    pieces = []
    for text in written:
        keeper.add(text)
        pieces.append(keeper.take(5))
    assert keeper.so_far(4) == RunOutput("\u00e9end", 71, True)
    kept = keeper.end()
    while piece := keeper.take(5):
        pieces.append(piece)
    head, tail = "ab\u20ac" + "\U0001f600" * 3, "\u00e9" * 8 + "end"  # 17 and 19 bytes
    assert kept == RunOutput(head + "\n[... 35 bytes of output left out ...]\n" + tail, 71, True)
    assert "".join(pieces) == kept.text and all(len(piece.encode()) <= 5 for piece in pieces)


def test_a_printed_line_that_looks_like_a_message_is_output_not_protocol(horse):
    outcome = horse.perform(job("fake_messages"))
    assert (outcome.state, outcome.payload) == (RunState.SUCCEEDED, "real")
    assert outcome.output.text == "".join((FAKE_RESULT % seq + "\n") * 2 for seq in range(5))


def test_a_process_left_holding_the_output_delays_the_end_half_a_second_at_most(horse, tmp_path):
    done = tmp_path / "done"
    began = time.monotonic()
    outcome = horse.perform(job("daemon", seconds=1.5, done=str(done)))
    assert time.monotonic() - began < 1.2
    assert outcome.output == RunOutput("early\n", 6, False)
    # It writes "late" after the run: dropped, not a SIGPIPE (it goes on to create the file).
    wait_for(done.exists, timeout=5, interval=0.02, what="the left process to write after the run")
    assert horse.perform(job("return", payload=1)).output == RunOutput()


def test_what_a_process_left_behind_writes_within_half_a_second_of_the_run_is_the_runs_output(horse, tmp_path):
    done = tmp_path / "done"
    outcome = horse.perform(job("daemon", seconds=0.1, done=str(done)))
    assert outcome.output == RunOutput("early\nlate\n", 11, False)
    assert done.exists()  # the run ended when the left process closed the output, not before
    assert horse.perform(job("print")).output.text == "to stdout from the handler\nto stderr from the handler\n"


# The capture in a process of its own, as the child uses it: fds 1 and 2 are the pipe's while a run goes on.
CAPTURE = """
import json, logging, os, threading, time
from tasker.manager.workhorse_capture import Capture

sent = []
capture = Capture()
send = lambda text: sent.append((threading.current_thread().name, text))
"""

QUIET_RUNS = """
def switches(thread):
    with open("/proc/self/task/%d/status" % thread.native_id) as status:
        return next(int(line.split()[1]) for line in status if line.startswith("voluntary_ctxt_switches"))

capture.start(send)
capture.finish()
pump = next(thread for thread in threading.enumerate() if thread.name == "output-pump")
before = -1
while before != switches(pump):  # until it waits in epoll
    before = switches(pump)
    time.sleep(0.05)
for _ in range(200):
    capture.start(send)
    capture.finish()
wakes = switches(pump) - before
capture.start(send)
print("written", flush=True)
os.write(2, b"to stderr\\n")
capture.finish()
print(json.dumps({"wakes": wakes, "sent": sent}))
"""

LOGGING_AT_THE_END = """
def slow_send(text):  # a manager slow to read: the record takes a while to get through
    send(text)
    time.sleep(0.002)

logging.getLogger().setLevel(logging.INFO)
capture.start(slow_send)
threading.Thread(target=lambda: logging.getLogger("busy").info("x" * 2**22)).start()
while not sent:  # the thread is writing its record, holding the log handler's lock
    time.sleep(0.001)
capture.finish()
print(json.dumps({"sent": sum(len(text) for _, text in sent)}))
"""


def run_capture(script: str) -> dict:
    command = [sys.executable, "-c", CAPTURE + script]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert done.stderr == ""
    return json.loads(done.stdout)


def test_a_run_that_writes_nothing_wakes_no_thread_and_what_is_left_at_its_end_goes_from_the_runs_thread():
    assert run_capture(QUIET_RUNS) == {"wakes": 0, "sent": [["MainThread", "written\nto stderr\n"]]}


def test_a_record_another_thread_is_logging_as_the_run_ends_is_passed_on_whole():
    header = len("2026-01-01 00:00:00,000 INFO busy: ")
    assert run_capture(LOGGING_AT_THE_END) == {"sent": header + 2**22 + 1}


# Cancel -------------------------------------------------------------------------------------------


def test_cancel_with_no_run_in_hand_is_false(horse):
    assert horse.cancel() is False
    horse.perform(job("return"))
    assert horse.cancel() is False


@pytest.fixture
def waiting(horse):
    """Begin a run of `do` and drive it until the handler reported progress."""

    def begin(do: str, **payload) -> None:
        progress = []
        horse.on_progress = lambda percent, message: progress.append(message)
        horse.begin(job(do, **payload))
        drive_until(horse, lambda: progress)

    return begin


def test_a_cooperative_handler_sees_cancelled_within_a_second_and_ends_cancelled(horse, waiting, started):
    waiting("cooperative")
    asked = time.monotonic()
    assert horse.cancel(grace=60) is True and horse.cancel(grace=60) is False  # asked already
    outcome = drive(horse)
    assert time.monotonic() - asked < 1
    output = RunOutput("waiting\nstopping\n", 17, False)
    assert outcome == Outcome(RunState.CANCELLED, 1, "cancelled: stopped early", None, output)
    assert horse.perform(job("cancelled_flag")).payload is False  # the next run, in the same child
    assert len(set(started)) == 1


def test_a_handler_that_succeeds_after_a_cancel_is_succeeded(horse, waiting, started):
    waiting("cooperative", then="succeed")
    assert horse.cancel(grace=60) is True
    assert drive(horse, limit=1) == Outcome(
        RunState.SUCCEEDED, 0, None, "finished", RunOutput("waiting\nstopping\n", 17)
    )
    assert horse.perform(job("cancelled_flag")).payload is False
    assert len(set(started)) == 1


def test_a_stubborn_handler_is_stopped_with_its_group_after_the_grace(horse, waiting, started, tmp_path):
    pidfile = tmp_path / "grandchild.pid"
    waiting("stubborn", pidfile=str(pidfile))
    asked = time.monotonic()
    assert horse.cancel(grace=0.5) is True
    output = RunOutput("stubborn\n", 9, False)  # what it wrote before it was killed
    assert drive(horse) == Outcome(RunState.CANCELLED, 1, "cancelled", None, output)
    assert 0.5 <= time.monotonic() - asked < 0.5 + GRACE + 1
    grandchild = int(pidfile.read_text())
    wait_for(lambda: gone(grandchild), timeout=5, interval=0.02, what="the grandchild to be killed")
    assert horse.perform(job("return", payload=1)).payload == 1
    assert started[1] != started[0]  # a new child


def test_a_run_that_reaches_its_time_limit_after_a_cancel_is_cancelled(horse, waiting):
    waiting("progress_loop", timeout=0.5)
    assert horse.cancel(grace=60) is True
    assert drive(horse) == Outcome(RunState.CANCELLED, 1, "cancelled", None)
