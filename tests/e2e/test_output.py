"""A run's output, end to end: what a handler writes is stored in chunks and served byte for byte."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from tasker.storage.models import OUTPUT
from tests.handlers.chatty import LOGGED, STDERR_LINE, stdout_text
from tests.helpers import unique, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
JSON = {"Content-Type": "application/json"}  # retry and cancel take JSON only, even without a body
ENDPOINTS = ["out-a", "out-b"]
LOG_LINE = re.compile(r"^\S+ \S+ INFO tests\.handlers\.chatty: %s\n$" % LOGGED)


@pytest.fixture(scope="module")
def api(cluster):
    """An API, and a `chatty` manager on each of two endpoints."""
    for endpoint in ENDPOINTS:
        cluster.manager(endpoint, "chatty")
    return cluster.api(19080)[1]


def output(api, identifier, query):
    return api.request("GET", "/chatty/%s/output?%s" % (identifier, query))


def responses(api, identifier, query=""):
    answer = api.request("GET", "/chatty/%s%s" % (identifier, query))
    assert answer.status == 200, answer
    return {response["endpoint"]: response for response in answer.json["taskResponseList"]}


def split_output(raw: bytes) -> tuple[str, str, bytes]:
    """The stderr line, the logged line and the rest of what a chatty run wrote."""
    stderr_end = len(STDERR_LINE)
    log_end = raw.index(b"\n", stderr_end) + 1
    return raw[:stderr_end].decode(), raw[stderr_end:log_end].decode(), raw[log_end:]


@pytest.mark.slow
def test_ten_megabytes_of_output_are_stored_in_chunks_and_served_byte_for_byte(api, database):
    identifier, size = unique("chatty"), 10_000_000
    body = {"identifier": identifier, "payload": {"bytes": size}, "endpoints": ["out-a"]}
    assert api.post("chatty", body).status == 201
    api.wait_status("chatty", identifier, ("DONE",), timeout=90)

    answer = output(api, identifier, "endpoint=out-a")
    assert answer.status == 200, answer
    assert answer.headers["content-type"] == "text/plain; charset=utf-8"
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert (answer.headers["x-tasker-run"], answer.headers["x-tasker-run-state"]) == ("1", "succeeded")
    stderr, logged, stdout = split_output(answer.raw)
    assert stderr == STDERR_LINE and LOG_LINE.match(logged), logged
    assert stdout == stdout_text(size).encode("utf-8"), "the very bytes the handler wrote"
    assert int(answer.headers["x-tasker-output-size"]) == len(answer.raw)

    response = responses(api, identifier)["out-a"]
    assert response["output_size"] == len(answer.raw)
    assert response["output_tail"] == answer.raw.decode("utf-8")[-2000:]
    with database.connection() as connection:
        sizes = connection.execute(
            select(func.length(OUTPUT.c.chunk)).where(OUTPUT.c.task_id == response["task_id"])
        ).scalars()
        sizes = list(sizes)
    assert len(sizes) == 10 and max(sizes) <= 2**20, "chunks of at most 1 MiB"


def test_a_run_not_ended_answers_the_nothing_stored_yet_and_says_it_runs(api):
    identifier = unique("chatty-running")
    body = {"identifier": identifier, "payload": {"bytes": 100, "seconds": 3}, "endpoints": ["out-b"]}
    assert api.post("chatty", body).status == 201
    api.wait_state("chatty", identifier, "out-b", ("running",))
    answer = output(api, identifier, "endpoint=out-b")
    assert (answer.status, answer.raw, answer.headers["x-tasker-run-state"]) == (200, b"", "running"), answer
    assert "x-tasker-output-size" not in answer.headers
    # The response shows what the run wrote so far, within a tick and a write.
    live = wait_for(lambda: _shown_so_far(api, identifier), 2.5, 0.05, "the output so far")
    assert live["state"] == "running" and STDERR_LINE in live["output_tail"], live
    assert live["output_size"] == len(live["output_tail"].encode()), "all of it so far: it is short"
    api.wait_state("chatty", identifier, "out-b", ("succeeded",))
    done = output(api, identifier, "endpoint=out-b")
    assert done.raw.endswith(stdout_text(100).encode()) and done.headers["x-tasker-run-state"] == "succeeded"


def test_an_earlier_run_keeps_its_output_after_a_retry(api, tmp_path):
    identifier = unique("chatty-retry")
    payload = {"bytes": 5000, "fail_first": True, "dir": str(tmp_path)}
    assert api.post("chatty", {"identifier": identifier, "payload": payload, "endpoints": ["out-a"]}).status == 201
    api.wait_state("chatty", identifier, "out-a", ("failed",))
    assert split_output(output(api, identifier, "endpoint=out-a").raw)[2] == b"first run\n"

    assert api.request("POST", "/chatty/%s/retry" % identifier, headers=JSON).status == 202
    wait_for(lambda: responses(api, identifier)["out-a"]["state"] == "succeeded", 30, 0.1, "the retried run")
    current, first = output(api, identifier, "endpoint=out-a"), output(api, identifier, "endpoint=out-a&run=1")
    assert split_output(current.raw)[2] == stdout_text(5000).encode()
    assert output(api, identifier, "endpoint=out-a&run=2").raw == current.raw
    assert current.headers["x-tasker-run"] == "2" and first.headers["x-tasker-run"] == "1"
    assert split_output(first.raw)[2] == b"first run\n" and first.headers["x-tasker-run-state"] == "failed"

    response = responses(api, identifier, "?runs=all")["out-a"]
    assert (response["run"], response["output_size"]) == (2, len(current.raw))
    (earlier,) = response["runs"]
    assert (earlier["run"], earlier["output_size"]) == (1, len(first.raw))
    assert earlier["output_tail"] == first.raw.decode()


@pytest.mark.parametrize(
    "query, status, words",
    [
        ("", 400, "endpoint is missing"),
        ("endpoint=a%20b", 400, "endpoint 'a b' is not"),
        ("endpoint=out-a&run=0", 400, "run must be a run number"),
        ("endpoint=out-a&run=-1", 400, "run must be a run number"),
        ("endpoint=out-a&run=abc", 400, "run must be a run number"),
        ("endpoint=out-a&run=2147483648", 400, "run must be a run number"),
        ("endpoint=out-z", 404, "has no endpoint 'out-z'"),
        ("endpoint=out-a&run=2", 404, "has no run 2 (its current run is 1)"),
    ],
)
def test_a_bad_or_unknown_selection_answers_a_json_error(api, query, status, words):
    identifier = unique("chatty-errors")
    assert api.post("chatty", {"identifier": identifier, "payload": {}, "endpoints": ["out-a"]}).status == 201
    answer = output(api, identifier, query)
    assert answer.status == status and answer.headers["content-type"].startswith("application/json"), answer
    assert answer.json["error"]["status"] == status and words in answer.json["error"]["message"], answer


def test_an_unknown_task_answers_404(api):
    for path in ("/chatty/no-such-%s/output?endpoint=out-a" % unique(), "/chatty/a%20b/output?endpoint=out-a"):
        answer = api.request("GET", path)
        assert answer.status == 404 and answer.json["error"]["status"] == 404, answer


def _shown_so_far(api, identifier):
    response = responses(api, identifier)["out-b"]
    return response if response["output_tail"] else None
