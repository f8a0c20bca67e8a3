"""The `tasker` command against a real API and real managers: exit statuses, piped lines,
`--json` as the API answers it, output byte for byte, retry, cancel, endpoints, list, tokens."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import time

import pytest

from tests.helpers import ROOT, unique
from tests.sse_client import EventStreamClient

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
PORT, TOKEN_PORT, NOBODY_PORT = 19151, 19152, 19169
ENDPOINTS = ["cli-a", "cli-b"]
TOKEN = "cli-test-token"
TASKER = str(ROOT / ".venv" / "bin" / "tasker")
QUICK = {"steps": 2, "seconds": 0.3}
CHANGE = re.compile(r"^\d\d:\d\d:\d\d (cli-a|cli-b) (run \d+ )?(queued|received|running|succeeded|failed|cancelled)")


@pytest.fixture(scope="module")
def api(cluster):
    """An API, and a `cli_demo` manager on each of two endpoints."""
    for endpoint in ENDPOINTS:
        cluster.manager(endpoint, "cli_demo")
    return cluster.api(PORT)[1]


@pytest.fixture(scope="module")
def guarded(cluster, api):
    """An API that needs a token and serves one event stream at most."""
    env = {"TASKER_TEST_API_AUTH": "tokens", "TASKER_TEST_API_TOKENS": TOKEN, "TASKER_TEST_MAX_EVENT_STREAMS": "1"}
    return cluster.api(TOKEN_PORT, env=env, token=TOKEN)[1]


def tasker(*args: str, port: int = PORT, token: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run the command, piped (stdout is not a terminal), against the API on `port`."""
    env = dict(os.environ, TASKER_URL="http://127.0.0.1:%d" % port)
    env.pop("TASKER_TOKEN", None)
    if token:
        env["TASKER_TOKEN"] = token
    return subprocess.run([TASKER, *args], env=env, capture_output=True, timeout=timeout)


def lines(done: subprocess.CompletedProcess) -> list[str]:
    return done.stdout.decode().splitlines()


def one_error_line(done: subprocess.CompletedProcess) -> str:
    err = done.stderr.decode()
    assert err.startswith("tasker: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


def submit_json(*args: str) -> tuple[int, dict]:
    done = tasker("submit", "cli_demo", "--json", *args)
    return done.returncode, json.loads(done.stdout)


def test_submit_wait_on_two_endpoints_that_succeed_exits_0_with_a_line_per_change_and_a_summary(api):
    done = tasker(
        "submit", "cli_demo", "-e", "cli-a,cli-b", "--payload", json.dumps({"steps": 4, "seconds": 0.4}), "--wait"
    )
    assert done.returncode == 0, done
    out = lines(done)
    identifier = re.match(r"^cli_demo/(\S+) SENT: cli-a, cli-b$", out[0]).group(1)
    changes, summary = out[1:-1], out[-1]
    assert changes and all(CHANGE.match(line) for line in changes), out
    assert summary.startswith("cli_demo/%s DONE: succeeded 2 (" % identifier), summary
    for endpoint in ENDPOINTS:
        mine = [line[9:] for line in changes if line.startswith(endpoint, 9)]
        assert mine[-1] == "%s succeeded" % endpoint, mine
        assert all(a != b for a, b in zip(mine, mine[1:], strict=False)), "one line per change: %s" % mine
    assert any(re.search(r" running \d+% step \d of 4$", line) for line in changes), changes
    assert api.get("cli_demo", identifier).json["task"]["status"] == "DONE"


def test_json_of_submit_wait_and_get_is_the_apis_own_answer(api):
    identifier = unique("cli-json")
    status, final = submit_json("-i", identifier, "-e", "cli-a", "--payload", json.dumps(QUICK), "--wait")
    assert status == 0 and final["task"]["settled"], final
    assert final == api.get("cli_demo", identifier).json
    got = tasker("get", "cli_demo", identifier, "--json")
    assert (got.returncode, json.loads(got.stdout)) == (0, api.get("cli_demo", identifier).json)
    body = {"identifier": identifier, "endpoints": ["cli-a"], "payload": QUICK}
    again = tasker("submit", "cli_demo", "-i", identifier, "-e", "cli-a", "--payload", json.dumps(QUICK), "--json")
    assert again.returncode == 0 and json.loads(again.stdout) == api.post("cli_demo", body).json


def test_a_failing_endpoint_exits_1_and_a_retry_of_it_succeeds(api):
    identifier = unique("cli-fail")
    payload = dict(QUICK, fail_on=["cli-b"], fail_runs=[1])
    failed = tasker(
        "submit", "cli_demo", "-i", identifier, "-e", "cli-a", "-e", "cli-b", "-p", json.dumps(payload), "-w"
    )
    assert failed.returncode == 1, failed
    assert "cli-b failed errnr 5: step 2 failed on cli-b" in failed.stdout.decode()
    assert lines(failed)[-1].startswith("cli_demo/%s DONE: succeeded 1, failed 1" % identifier)
    shown = tasker("get", "cli_demo", identifier)
    assert shown.returncode == 1 and "errnr 5: step 2 failed on cli-b" in shown.stdout.decode()

    retried = tasker("retry", "cli_demo", identifier, "--endpoints", "failed", "--after-run", "1", "--wait")
    assert retried.returncode == 0, retried
    assert "cli-b run 2 succeeded" in retried.stdout.decode() and "succeeded 2" in lines(retried)[-1]
    responses = {r["endpoint"]: r for r in api.get("cli_demo", identifier).json["taskResponseList"]}
    assert (responses["cli-a"]["run"], responses["cli-b"]["run"], responses["cli-b"]["state"]) == (1, 2, "succeeded")
    repeated = tasker("retry", "cli_demo", identifier, "--endpoints", "cli-b", "--after-run", "1")
    assert repeated.returncode == 0 and "nothing new" in repeated.stdout.decode(), repeated


def test_a_cancelled_task_exits_3(api):
    identifier = unique("cli-cancel")
    status, _ = submit_json("-i", identifier, "-e", "cli-a", "--payload", json.dumps({"steps": 60, "seconds": 0.2}))
    assert status == 0
    api.wait_state("cli_demo", identifier, "cli-a", ("running",))
    done = tasker("cancel", "cli_demo", identifier, "--wait")
    assert done.returncode == 3, done
    assert re.fullmatch(r"cli_demo/%s (SENT|CANCELLED): cancel recorded" % identifier, lines(done)[0]), lines(done)
    assert lines(done)[-1].startswith("cli_demo/%s CANCELLED: cancelled 1" % identifier), lines(done)
    watched = tasker("watch", "cli_demo", identifier, "--json")
    assert watched.returncode == 3 and json.loads(watched.stdout)["task"]["status"] == "CANCELLED"


def test_a_reader_that_goes_away_ends_the_command_quietly(api):
    env = dict(os.environ, TASKER_URL="http://127.0.0.1:%d" % PORT)
    args = [TASKER, "submit", "cli_demo", "-e", "cli-a", "-p", json.dumps(QUICK), "--wait"]
    command = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert command.stdout.readline().startswith(b"cli_demo/")
    command.stdout.close()  # as `| head -1` does
    assert command.wait(30) == 141
    assert command.stderr.read() == b"", "no traceback, no error line"
    command.stderr.close()


def test_an_api_that_is_not_there_exits_4_with_one_line_and_watch_says_so_at_once():
    done = tasker("get", "cli_demo", "x", port=NOBODY_PORT)
    assert done.returncode == 4 and done.stdout == b""
    assert "cannot reach the API at http://127.0.0.1:%d" % NOBODY_PORT in one_error_line(done)
    started = time.monotonic()
    watched = tasker("watch", "cli_demo", "x", port=NOBODY_PORT)
    assert watched.returncode == 4 and "cannot reach the API" in one_error_line(watched)
    assert time.monotonic() - started < 10, "not a minute of silence"


@pytest.mark.parametrize(
    "args, token, words",
    [
        ([b"get", b"cli_demo", b"\xff"], None, "ID must be"),
        ([b"list", b"cli_demo", b"--identifier", b"caf\xe9"], None, "--identifier"),
        ([b"list", b"cli_demo", b"--since", b"2026-13-45"], None, "--since must be a UTC time"),
        ([b"list", b"cli_demo", b"--status", b"BOGUS"], None, "--status must be one of"),
        ([b"get", b"cli_demo", b"x" * 100_000], None, "ID must be 1 to 50 characters"),
        ([b"--url", b"http://[::1", b"get", b"cli_demo", b"x"], None, "TASKER_URL is not a valid URL"),
        ([b"get", b"cli_demo", b"x"], "cli-secret\r", "cannot carry"),
    ],
)
def test_bad_usage_exits_2_with_one_line_even_with_nothing_listening(args, token, words):
    done = subprocess.run(
        [TASKER.encode(), *args],
        env=dict(os.environ, TASKER_URL="http://127.0.0.1:%d" % NOBODY_PORT, TASKER_TOKEN=token or ""),
        capture_output=True,
        timeout=30,
    )
    assert done.returncode == 2 and words in one_error_line(done), done
    assert b"cli-secret" not in done.stderr


@pytest.mark.parametrize(
    "args, words",
    [
        (["submit", "cli_demo", "--identifier", "not ok!"], "identifier"),
        (["submit", "cli_demo", "-e", "cli-a", "--max-errors", "101%"], "max_errors"),
        (["get", "nosuchtype", "x"], "HTTP 404"),
        (["list", "cli_demo", "--status", "done"], "status must be one of"),
        (["output", "cli_demo", "nope", "--endpoint", "cli-a"], "HTTP 404"),
        (["submit"], "Missing argument 'TYPE'"),
    ],
)
def test_bad_usage_and_requests_the_api_refuses_exit_2_with_one_line(api, args, words):
    done = tasker(*args)
    assert done.returncode == 2 and words in one_error_line(done), done


def test_output_is_printed_byte_for_byte_as_served(api):
    identifier = unique("cli-output")
    say = "naïve €uro 𝄞 clef\n\ttab and trailing spaces   \n" * 50
    status, _ = submit_json("-i", identifier, "-e", "cli-b", "--payload", json.dumps(dict(QUICK, say=say)), "-w")
    assert status == 0
    served = api.request("GET", "/cli_demo/%s/output?endpoint=cli-b" % identifier)
    assert served.status == 200 and say.encode() in served.raw
    done = tasker("output", "cli_demo", identifier, "--endpoint", "cli-b")
    assert (done.returncode, done.stdout, done.stderr) == (0, served.raw, b"")
    assert tasker("output", "cli_demo", identifier, "-e", "cli-b", "--run", "1").stdout == served.raw


def test_endpoints_and_list_show_the_fleet_and_the_history(api):
    table = tasker("endpoints", "--type", "cli_demo")
    assert table.returncode == 0 and lines(table)[0].split()[:3] == ["type", "endpoint", "alive"]
    rows = [line.split() for line in lines(table)[1:]]
    assert [(row[0], row[1], row[2]) for row in rows] == [("cli_demo", "cli-a", "yes"), ("cli_demo", "cli-b", "yes")]
    shown = json.loads(tasker("endpoints", "--json").stdout)["endpoints"]
    expected = api.request("GET", "/endpoints").json["endpoints"]
    assert [(e["type"], e["endpoint"], e["host"]) for e in shown] == [
        (e["type"], e["endpoint"], e["host"]) for e in expected
    ]

    prefix = unique("cli-list")
    for number in range(3):
        assert submit_json("-i", "%s-%d" % (prefix, number), "-e", "cli-a", "-p", '{"steps": 0}')[0] == 0
    for number in range(3):  # settled: the command and the test read the same
        api.wait_status("cli_demo", "%s-%d" % (prefix, number), ("DONE",))
    page = tasker("list", "cli_demo", "--identifier", prefix, "--limit", "2", "--json")
    assert json.loads(page.stdout) == api.request("GET", "/cli_demo?identifier=%s&limit=2" % prefix).json
    every = json.loads(tasker("list", "cli_demo", "--identifier", prefix, "--limit", "2", "--all", "--json").stdout)
    assert [task["identifier"] for task in every["tasks"]] == ["%s-%d" % (prefix, n) for n in (2, 1, 0)]
    assert every["next"] is None
    listed = tasker("list", "cli_demo", "--identifier", prefix, "--limit", "2")
    assert listed.returncode == 0 and lines(listed)[0].split()[:2] == ["identifier", "status"]
    assert [line.split()[0] for line in lines(listed)[1:3]] == ["%s-2" % prefix, "%s-1" % prefix]
    hint = re.fullmatch(r"more: (tasker list .*) \(or --all\)", lines(listed)[3]).group(1)
    assert hint.startswith("tasker list cli_demo --identifier %s --limit 2 --cursor " % prefix), hint
    following = tasker(*shlex.split(hint)[1:])
    assert [line.split()[0] for line in lines(following)[1:]] == ["%s-0" % prefix], "the next page, same filters"


def test_a_token_is_needed_and_sent_and_polling_stands_in_for_a_stream_refused(guarded):
    refused = tasker("endpoints", port=TOKEN_PORT)
    assert refused.returncode == 2 and "needs a token: set TASKER_TOKEN" in one_error_line(refused)
    wrong = tasker("endpoints", port=TOKEN_PORT, token="not-" + TOKEN)
    assert wrong.returncode == 2 and "refused the token" in one_error_line(wrong)
    assert "not-" + TOKEN not in wrong.stderr.decode()

    headers = {"Authorization": "Bearer " + TOKEN}
    with EventStreamClient(TOKEN_PORT, "?type=cli_demo", headers=headers) as stream:  # the one stream it serves
        assert stream.status == 200
        done = tasker("submit", "cli_demo", "-e", "cli-a", "-p", json.dumps(QUICK), "-w", port=TOKEN_PORT, token=TOKEN)
        # The stream this test holds was the only one all along: the command had none.
        assert guarded.request("GET", "/health").json["event_streams"] == 1
    assert done.returncode == 0, done
    assert "cli-a succeeded" in done.stdout.decode() and "DONE: succeeded 1" in lines(done)[-1]
