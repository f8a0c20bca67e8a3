"""The work horse's child as its manager talks to it: lines of JSON over a socket."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

from tests.helpers import ROOT
from tests.unit.real_horse import HANDLER


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
