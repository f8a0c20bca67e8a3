"""The `tasker` command's options turned into request bodies and queries, and its usage errors."""

from __future__ import annotations

import io
import json
import shlex
import socket

import pytest

from tasker.client import arguments
from tasker.client.api_client import ApiClient
from tasker.client.errors import UsageError
from tasker.client.main import main


def test_a_submit_body_has_only_the_keys_given():
    assert arguments.submit_body("t-1", None, (), None, None, None) == {"identifier": "t-1"}
    body = arguments.submit_body("t-1", '{"v": [1, 2]}', ("web1,web2", "web3"), 30.0, "25%", "0")
    assert body == {
        "identifier": "t-1",
        "payload": {"v": [1, 2]},
        "endpoints": ["web1", "web2", "web3"],
        "timeout": 30,
        "max_concurrency": "25%",
        "max_errors": 0,
    }
    assert arguments.submit_body("t-1", '"text"', (), 0.5, None, None)["timeout"] == 0.5


def test_a_payload_comes_from_a_file_or_stdin(tmp_path, monkeypatch):
    path = tmp_path / "payload.json"
    path.write_text('{"version": "1.4.3"}')
    assert arguments.payload_value("@%s" % path) == {"version": "1.4.3"}
    monkeypatch.setattr("sys.stdin", io.StringIO("[1, 2]"))
    assert arguments.payload_value("@-") == [1, 2]


@pytest.mark.parametrize(
    "text, words",
    [
        ("{x", "--payload is not valid JSON"),
        ("NaN", "--payload is not valid JSON"),
        ("plain words", "a string is written with its quotes"),
        ("@/nonexistent/payload.json", "cannot read --payload file /nonexistent/payload.json"),
    ],
)
def test_a_payload_that_is_not_json_is_a_usage_error_that_says_so(text, words):
    with pytest.raises(UsageError, match=words):
        arguments.payload_value(text)


@pytest.mark.parametrize("text", ["x", "-1", "1.5", "25 %", "%"])
def test_a_limit_is_a_whole_number_or_a_percentage(text):
    assert arguments.limit_value("3", "--max-errors") == 3
    assert arguments.limit_value("10%", "--max-errors") == "10%"
    with pytest.raises(UsageError, match="--max-errors must be a whole number or a percentage"):
        arguments.limit_value(text, "--max-errors")


def test_a_retry_selects_by_keyword_or_by_names_and_sends_an_object_when_nothing_is_given():
    assert arguments.retry_body((), None) == {}
    assert arguments.retry_body(("missing",), 2) == {"endpoints": "missing", "after_run": 2}
    assert arguments.retry_body(("web1,web2", "web3"), None) == {"endpoints": ["web1", "web2", "web3"]}
    with pytest.raises(UsageError, match="not both"):
        arguments.retry_body(("failed", "web1"), None)


def test_a_date_alone_stands_for_its_first_or_last_second():
    query = arguments.list_query({"since": "2026-05-01", "until": "2026-05-02", "status": None, "limit": 5})
    assert query == {"since": "2026-05-01 00:00:00", "until": "2026-05-02 23:59:59", "limit": 5}
    assert arguments.list_query({"since": "2026-05-01T10:00:00"}) == {"since": "2026-05-01 10:00:00"}
    assert arguments.list_query({"status": "DONE", "state": "timed_out"}) == {"status": "DONE", "state": "timed_out"}


def test_the_next_page_hint_repeats_the_filters_given(monkeypatch, capsys):
    pages = [{"tasks": [{"identifier": "pipe-9", "status": "DONE"}], "next": "MjAyNjA1MDE"}]
    asked: list[dict] = []
    monkeypatch.setattr(ApiClient, "tasks", lambda self, task_type, query: asked.append(query) or pages[0])
    argv = ["list", "worker", "--identifier", "pipe-", "--limit", "5", "--since", "2026-05-01 10:00:00"]
    assert main(argv + ["--cursor", "b2xk"]) == 0
    hint = capsys.readouterr().out.splitlines()[-1]
    expected = "tasker list worker --since '2026-05-01 10:00:00' --identifier pipe- --limit 5 --cursor MjAyNjA1MDE"
    assert hint == "more: %s (or --all)" % expected
    assert main(shlex.split(expected)[1:]) == 0
    assert asked[1] == dict(asked[0], cursor="MjAyNjA1MDE"), "the same filters, the next page"


@pytest.mark.parametrize(
    "argv, words",
    [
        (["submit"], "Missing argument 'TYPE'"),
        (["get", "worker"], "Missing argument 'ID'"),
        (["output", "worker", "x"], "Missing option '--endpoint'"),
        (["submit", "worker", "--timeout", "0"], "--timeout"),
        (["submit", "worker", "--payload", "{"], "--payload is not valid JSON"),
        (["retry", "worker", "x", "--endpoints", "all,web1"], "not both"),
        (["frobnicate"], "No such command"),
        (["--url", "ftp://host", "get", "worker", "x"], "must be an http:// or https:// URL"),
    ],
)
def test_bad_usage_exits_2_with_one_line_on_stderr(argv, words, capsys):
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and err.startswith("tasker: ") and words in err, err


@pytest.fixture
def closed_url() -> str:
    """The URL of a local port nothing listens on."""
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    return "http://127.0.0.1:%d" % port


def test_an_api_that_cannot_be_reached_exits_4_and_the_token_is_never_shown(capsys, monkeypatch, closed_url):
    monkeypatch.setenv("TASKER_TOKEN", "s3cret-token-value")
    assert main(["--url", closed_url, "get", "worker", "x"]) == 4
    out, err = capsys.readouterr()
    assert err.startswith("tasker: cannot reach the API at %s" % closed_url) and err.count("\n") == 1, err
    assert "s3cret" not in out + err


def test_the_generated_identifier_of_a_submit_that_was_refused_a_connection_is_not_suggested(capsys, closed_url):
    assert main(["--url", closed_url, "submit", "worker", "--payload", json.dumps({"a": 1})]) == 4
    assert "--identifier" not in capsys.readouterr().err


@pytest.mark.parametrize(
    "token", ["SEKRIT-abc\r", "SEKRIT\r\nX-Injected: 1", "SEKRIT-abc\n", "SEKRIT é", "SEKRIT-\u20ac", "SEKRIT-\udcff"]
)
def test_a_token_a_header_cannot_carry_is_bad_usage_and_never_shown(token, capsys, monkeypatch, closed_url):
    monkeypatch.setenv("TASKER_TOKEN", token)
    assert main(["--url", closed_url, "get", "worker", "x"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1, err
    assert err.startswith("tasker: TASKER_TOKEN (or --token) holds a character an HTTP header cannot carry"), err
    assert "SEKRIT" not in err


LONG = "x" * 100_000


@pytest.mark.parametrize(
    "argv, words",
    [
        (["list", "worker", "--since", "garbage"], "--since must be a UTC time"),
        (["list", "worker", "--since", "2026-13-45"], "--since must be a UTC time"),
        (["list", "worker", "--until", "2026-05-01 25:00:00"], "--until must be a UTC time"),
        (["list", "worker", "--since", "2026-05-02", "--until", "2026-05-01"], "is after --until"),
        (["list", "worker", "--status", "BOGUS"], "--status must be one of CREATED, SENT, DONE"),
        (["list", "worker", "--status", "done"], "--status must be one of"),
        (["list", "worker", "--state", "ok"], "--state must be one of queued, received, running"),
        (["list", "worker", "--limit", "501"], "--limit"),
        (["list", "worker", "--limit", "0"], "--limit"),
        (["list", "worker", "--identifier", LONG], "--identifier (the start of identifiers) must be 1 to 50"),
        (["list", "worker", "--endpoint", "web 1"], "--endpoint must be 1 to 50"),
        (["list", "worker", "--cursor", "not a cursor"], "--cursor must be a page's `next`"),
        (["get", "worker", "not ok!"], "ID must be 1 to 50 characters"),
        (["get", "worker", LONG], "ID must be 1 to 50 characters"),
        (["watch", "Worker", "x"], "TYPE must be a task type name"),
        (["get", "worker", "caf\udcff"], "ID must be"),  # a non-UTF-8 argument, as Python decodes it
        (["get", "w\udcff", "x"], "TYPE must be"),
        (["list", "worker", "--identifier", "\udcff"], "--identifier"),
        (["submit", "worker", "-i", LONG], "--identifier must be 1 to 50"),
        (["submit", "worker", "-e", "web1,web 2"], "--endpoint name must be"),
        (["retry", "worker", "x", "-e", "web1,we/b2"], "--endpoints name must be"),
        (["output", "worker", "x", "-e", "../web1"], "--endpoint must be"),
        (["endpoints", "--type", "no-such-type"], "--type must be a task type name"),
        (["--url", "http://[::1", "get", "worker", "x"], "TASKER_URL is not a valid URL"),
        (["--url", "http://127.0.0.1:99999", "get", "worker", "x"], "TASKER_URL is not a valid URL"),
        (["--url", "http://h\udcffst/", "get", "worker", "x"], "TASKER_URL is not a valid URL: it is not UTF-8"),
    ],
)
def test_bad_usage_exits_2_before_any_request_even_with_nothing_listening(argv, words, capsys, monkeypatch, closed_url):
    monkeypatch.setenv("TASKER_URL", closed_url)
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and err.startswith("tasker: ") and words in err, err
    assert len(err) < 400, "a long value is shown cut"


def test_an_ipv6_api_is_shown_with_its_brackets():
    assert ApiClient("http://[::1]:9/base/").url == "http://[::1]:9/base"
