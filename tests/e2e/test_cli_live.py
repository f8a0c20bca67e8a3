"""The `tasker` command's live table, in a real terminal: a tmux pane 140 columns wide.

`submit --wait` on two endpoints whose handler reports progress and prints: the pane shows a
row `running` with its percent while it runs, then the final table, the summary and the exit
status. Ctrl-C leaves one line and status 130.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.helpers import ROOT, unique, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
PORT = 19153
ENDPOINTS = ["live-a", "live-b"]
TASKER = str(ROOT / ".venv" / "bin" / "tasker")
RUNNING_ROW = re.compile(r"^live-[ab]\s+running\s+\S+\s+\d+% step \d of \d", re.M)
EXIT_LINE = re.compile(r"^EXIT=(\d+)$", re.M)


@pytest.fixture(scope="module")
def api(cluster):
    """An API, and a `cli_demo` manager on each of two endpoints."""
    if shutil.which("tmux") is None:
        message = "tmux is not installed (apt-get install tmux)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    for endpoint in ENDPOINTS:
        cluster.manager(endpoint, "cli_demo")
    return cluster.api(PORT)[1]


class Pane:
    """One tmux session on a server of its own (its own socket), 140 x 40."""

    def __init__(self) -> None:
        self.socket = "tasker-cli-%s" % uuid.uuid4().hex[:8]

    def start(self, command: str) -> None:
        # pytest's COLUMNS and LINES (80 x 24) would win over the pane's size.
        shell = "env -u COLUMNS -u LINES TASKER_URL=http://127.0.0.1:%d %s; echo EXIT=$?; sleep 600" % (PORT, command)
        self.tmux("new-session", "-d", "-s", "live", "-x", "140", "-y", "40", shell)

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", "live")

    def keys(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", "live", *keys)

    def wait(self, pattern: re.Pattern, what: str, timeout: float = 30) -> str:
        """Wait until the screen shows `pattern`; that screen."""
        try:
            return wait_for(lambda: pattern.search(screen := self.screen()) and screen, timeout, 0.1, what)
        except AssertionError as exc:
            raise AssertionError("%s; the pane shows:\n%s" % (exc, self.screen())) from None

    def exit_status(self) -> int:
        """Wait for the command's end; its exit status."""
        screen = self.wait(EXIT_LINE, "the command to end")
        return int(EXIT_LINE.search(screen).group(1))

    def tmux(self, *args: str) -> str:
        done = subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True, timeout=10)
        assert done.returncode == 0, done
        return done.stdout

    def kill(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True, timeout=10)
        # tmux leaves its socket file behind
        socket_dir = Path(os.environ.get("TMUX_TMPDIR", "/tmp")) / ("tmux-%d" % os.getuid())
        (socket_dir / self.socket).unlink(missing_ok=True)


@pytest.fixture
def pane(api):
    terminal = Pane()
    yield terminal
    terminal.kill()


def test_submit_wait_draws_a_live_table_then_the_final_one_with_the_summary(pane, api):
    identifier = unique("live")
    payload = json.dumps({"steps": 6, "seconds": 0.5})
    command = "%s submit cli_demo -i %s -e live-a,live-b --payload %s --wait" % (
        TASKER,
        identifier,
        shlex.quote(payload),
    )
    pane.start(command)
    running = pane.wait(RUNNING_ROW, "a row running with its percent")
    assert "endpoint" in running and "attempts" in running and "last output" in running, running
    assert re.search(r"cli_demo/%s SENT: .*running" % identifier, running), running

    assert pane.exit_status() == 0
    final = pane.screen()
    assert final.count("last output") == 1, "the table is drawn in place, not scrolled:\n" + final
    for endpoint in ENDPOINTS:
        row = re.search(r"^%s\s+(\S+).*$" % endpoint, final, re.M)
        assert row.group(1) == "succeeded", final
        assert row.group(0).rstrip().endswith("%s: all 6 steps done" % endpoint), "the last output line:\n" + final
    assert re.search(r"^cli_demo/%s DONE: succeeded 2 \(" % identifier, final, re.M), final
    assert "Traceback" not in final


def test_ctrl_c_leaves_one_line_and_status_130_and_the_task_goes_on(pane, api):
    identifier = unique("live-stop")
    body = {"identifier": identifier, "endpoints": ["live-a"], "payload": {"steps": 40, "seconds": 0.3}}
    assert api.post("cli_demo", body).status == 201
    pane.start("%s watch cli_demo %s" % (TASKER, identifier))
    pane.wait(RUNNING_ROW, "a row running")
    pane.keys("C-c")
    assert pane.exit_status() == 130
    screen = pane.screen()
    assert "tasker: interrupted; the task goes on (tasker watch cli_demo %s)" % identifier in screen, screen
    assert "Traceback" not in screen
    assert api.get("cli_demo", identifier).json["taskResponseList"][0]["state"] == "running"
    assert api.request("POST", "/cli_demo/%s/cancel" % identifier, {}).status == 202  # no wait for it at the end
