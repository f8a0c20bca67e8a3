"""Waiting and pushing: `GET /<type>/<id>?wait=S`, `GET /events` as Server-Sent Events, reconnects
with Last-Event-ID (across an API restart), `reset` once the retention pruned, and the limits."""

from __future__ import annotations

import datetime as dt
import threading
import time

import pytest
from sqlalchemy import func, select, update

from tasker.storage.models import EVENT
from tests.helpers import unique, wait_for
from tests.sse_client import EventStreamClient, settled_event

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
PORT, LIMITED_PORT, RESTART_PORT, RETENTION_PORT = 19120, 19121, 19122, 19123
ENDPOINTS = ["ev-a", "ev-b"]
TOKEN = "events-token"
RESPONSE_KEYS = {"type", "identifier", "endpoint", "run", "state", "errnr", "progress", "progress_message"}
TASK_KEYS = {"type", "identifier", "status", "counts", "settled"}


@pytest.fixture(scope="module")
def api(cluster):
    """An API, and a `sleeper` manager on each of two endpoints (a run of 1 s is recorded running)."""
    for endpoint in ENDPOINTS:
        cluster.manager(endpoint, "sleeper")
    return cluster.api(PORT)[1]


@pytest.fixture(scope="module")
def limited(cluster, api):
    """An API with tokens that lets 2 requests wait and serves 2 event streams at most."""
    env = {
        "TASKER_TEST_MAX_WAITERS": "2",
        "TASKER_TEST_MAX_EVENT_STREAMS": "2",
        "TASKER_TEST_API_AUTH": "tokens",
        "TASKER_TEST_API_TOKENS": TOKEN,
    }
    return cluster.api(LIMITED_PORT, env=env, token=TOKEN)[1]


def post(api, identifier, seconds=1.0, endpoints=ENDPOINTS):
    answer = api.post("sleeper", {"identifier": identifier, "payload": {"seconds": seconds}, "endpoints": endpoints})
    assert answer.status == 201, answer
    return answer.json


def test_a_stream_shows_each_endpoint_go_from_queued_to_succeeded_and_the_task_settle(api):
    identifier = unique("sse")
    with EventStreamClient(PORT, "?type=sleeper&identifier=%s" % identifier) as stream:
        assert stream.status == 200, stream.body
        assert stream.headers["content-type"].startswith("text/event-stream")
        assert (stream.headers["cache-control"], stream.headers["x-accel-buffering"]) == ("no-cache", "no")
        post(api, identifier)
        frames = stream.until(settled_event(identifier))
    ids = [frame.id for frame in frames]
    assert ids == sorted(set(ids)), "ids increase, each once"
    assert {frame.kind for frame in frames} == {"task", "response"}
    for endpoint in ENDPOINTS:
        shown = [frame.data for frame in frames if frame.kind == "response" and frame.data["endpoint"] == endpoint]
        assert [data["state"] for data in shown] == ["queued", "received", "running", "succeeded"], shown
        assert all(set(data) == RESPONSE_KEYS and data["run"] == 1 for data in shown)
    tasks = [frame.data for frame in frames if frame.kind == "task"]
    assert [(data["status"], data["settled"]) for data in tasks] == [
        ("CREATED", False),
        ("SENT", False),
        ("DONE", True),
    ]
    assert all(set(data) == TASK_KEYS for data in tasks)
    assert tasks[-1]["counts"]["succeeded"] == 2


def test_a_client_back_after_the_api_restarted_gets_what_it_missed_once(cluster, api):
    process, restarted = cluster.api(RESTART_PORT)
    before, missed, after = unique("before"), unique("missed"), unique("after")
    stream = EventStreamClient(RESTART_PORT, "?type=sleeper")
    post(restarted, before, 0)
    seen = stream.until(settled_event(before))
    last = seen[-1].id

    process.stop()  # the stream ends as a whole answer, not cut off
    assert stream.ended.wait(10) and stream.clean
    post(api, missed, 0)  # through another API process while this one is down
    assert api.request("GET", "/sleeper/%s?wait=30" % missed).json["task"]["settled"]
    process, restarted = cluster.api(RESTART_PORT)

    with EventStreamClient(RESTART_PORT, "?type=sleeper", headers={"Last-Event-ID": str(last)}) as back:
        assert back.status == 200, back.body
        caught_up = back.until(settled_event(missed))
        post(api, after, 0)  # live now: after the seam between the database and the hub
        live = back.until(settled_event(after))
    frames = caught_up + live
    ids = [frame.id for frame in frames]
    assert ids == sorted(set(ids)) and ids[0] > last, "nothing twice, nothing from before Last-Event-ID"
    for identifier in (missed, after):
        mine = [frame.data for frame in frames if frame.data["identifier"] == identifier]
        assert [d["status"] for d in mine if "status" in d] == ["CREATED", "SENT", "DONE"], mine
        assert sorted(d["endpoint"] for d in mine if d.get("state") == "succeeded") == ENDPOINTS
    assert before not in {frame.data["identifier"] for frame in frames}
    process.stop()


def test_an_id_older_than_the_retention_gets_reset_and_the_stream_goes_on(fresh_cluster, api, database):
    post(api, unique("old"), 0)
    with database.connection() as connection:  # the task's events, and all before, are made old
        gone = connection.execute(select(func.max(EVENT.c.id))).scalar()
        connection.execute(update(EVENT).where(EVENT.c.id <= gone).values(time=dt.datetime(2020, 1, 1)))

    def oldest():
        with database.connection() as connection:
            return connection.execute(select(func.min(EVENT.c.id))).scalar()

    # An API keeping events for a minute prunes them in its first round, as it starts.
    process, pruning = fresh_cluster.api(RETENTION_PORT, env={"TASKER_TEST_EVENT_RETENTION": "60"})
    wait_for(lambda: (oldest() or gone + 1) > gone, 30, 0.2, "the retention to prune event %d" % gone)
    identifier = unique("after-reset")
    with EventStreamClient(RETENTION_PORT, "?type=sleeper", headers={"Last-Event-ID": str(gone - 1)}) as stream:
        reset = stream.next(10)
        assert reset.kind == "reset" and "api.event_retention" in reset.data["reason"], reset
        post(pruning, identifier, 0)
        frames = stream.until(settled_event(identifier))
    assert all(frame.id > reset.id and frame.kind in ("task", "response") for frame in frames)
    process.stop()


def test_wait_answers_as_soon_as_the_task_settles(api):
    identifier = unique("wait")
    post(api, identifier, 2.0, ENDPOINTS[:1])
    answered: dict = {}

    def wait():
        answer = api.request("GET", "/sleeper/%s?wait=30" % identifier)
        answered.update(answer=answer, at=time.monotonic())

    waiting = threading.Thread(target=wait)
    waiting.start()
    done_at = wait_for(
        lambda: api.get("sleeper", identifier).json["task"]["status"] == "DONE" and time.monotonic(), 30, 0.02
    )
    waiting.join(30)
    answer = answered["answer"]
    assert answer.status == 200 and answer.json["task"]["settled"] and answer.json["task"]["status"] == "DONE"
    assert answered["at"] - done_at < 1.0, "answered %.2f s after DONE" % (answered["at"] - done_at)


def test_wait_answers_after_its_seconds_with_the_task_as_it_is_then(api):
    identifier = unique("wait-long")
    post(api, identifier, 0, ["ev-nobody"])  # no manager: the run stays queued
    started = time.monotonic()
    answer = api.request("GET", "/sleeper/%s?wait=2&runs=all" % identifier)
    took = time.monotonic() - started
    assert answer.status == 200 and 2.0 <= took < 4.0, (answer, took)
    assert not answer.json["task"]["settled"] and answer.json["taskResponseList"][0]["state"] == "queued"
    assert answer.json["taskResponseList"][0]["runs"] == []
    plain = api.get("sleeper", identifier).json
    assert set(plain) == set(answer.json) and set(plain["task"]) == set(answer.json["task"])


@pytest.mark.parametrize("wait", ["0", "61", "-1", "1.5", "abc", "", "100"])
def test_a_wait_that_is_not_1_to_60_seconds_is_a_400(api, wait):
    identifier = unique("bad-wait")
    post(api, identifier, 0)
    answer = api.request("GET", "/sleeper/%s?wait=%s" % (identifier, wait))
    assert (
        answer.status == 400
        and "wait must be a whole number of seconds from 1 to 60" in answer.json["error"]["message"]
    )


@pytest.mark.parametrize(
    ("query", "headers", "says"),
    [
        ("?type=nosuchtype", {}, "not a task type"),
        ("?identifier=a%20b", {}, "identifier"),
        ("", {"Last-Event-ID": "abc"}, "Last-Event-ID"),
    ],
)
def test_a_stream_with_bad_filters_or_id_is_a_400(api, query, headers, says):
    with EventStreamClient(PORT, query, headers) as stream:
        assert stream.status == 400 and says in stream.error()["error"]["message"], stream.body


def test_a_ping_comes_after_15_seconds_on_a_quiet_stream(api):
    started = time.monotonic()
    with EventStreamClient(PORT, "?type=chatty&identifier=%s" % unique("quiet")) as stream:
        frame = stream.next(25)
    assert frame == {"comment": "ping"} and 14.5 <= time.monotonic() - started < 20


def test_tokens_go_in_the_authorization_header_only(limited):
    authorized = {"Authorization": "Bearer " + TOKEN}
    with EventStreamClient(LIMITED_PORT, "") as anonymous:
        assert anonymous.status == 401, anonymous.body
    with EventStreamClient(LIMITED_PORT, "?token=" + TOKEN) as in_url:
        assert in_url.status == 400 and "Authorization header" in in_url.error()["error"]["message"]
    with EventStreamClient(LIMITED_PORT, "?access_token=" + TOKEN, authorized) as both:
        assert both.status == 400
    with EventStreamClient(LIMITED_PORT, "", authorized) as stream:
        assert stream.status == 200


def test_waiters_beyond_max_waiters_get_a_503_until_one_answers(limited):
    identifier = unique("many-waits")
    post(limited, identifier, 0, ["ev-nobody"])
    answers: list = []
    threads = [
        threading.Thread(target=lambda: answers.append(limited.request("GET", "/sleeper/%s?wait=3" % identifier)))
        for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    wait_for(lambda: health(limited)["waiters"] == 2, 10, 0.05, "two requests waiting")
    refused = limited.request("GET", "/sleeper/%s?wait=3" % identifier)
    assert refused.status == 503 and "api.max_waiters" in refused.json["error"]["message"], refused
    assert limited.get("sleeper", identifier).status == 200, "a read without wait is not limited"
    for thread in threads:
        thread.join(10)
    assert [answer.status for answer in answers] == [200, 200]
    assert health(limited)["waiters"] == 0
    assert limited.request("GET", "/sleeper/%s?wait=1" % identifier).status == 200


def test_streams_beyond_max_event_streams_get_a_503_and_a_client_that_leaves_frees_its_slot(limited):
    authorized = {"Authorization": "Bearer " + TOKEN}
    wait_for(lambda: health(limited)["event_streams"] == 0, 10, 0.05, "the slots of earlier streams")
    first, second = EventStreamClient(LIMITED_PORT, "", authorized), EventStreamClient(LIMITED_PORT, "", authorized)
    try:
        assert (first.status, second.status) == (200, 200)
        with EventStreamClient(LIMITED_PORT, "", authorized) as third:
            assert third.status == 503 and "api.max_event_streams" in third.error()["error"]["message"]
        assert health(limited)["event_streams"] == 2
        first.close()
        wait_for(lambda: health(limited)["event_streams"] == 1, 10, 0.05, "the slot of the client that left")
        with EventStreamClient(LIMITED_PORT, "", authorized) as again:
            assert again.status == 200
        wait_for(lambda: health(limited)["event_streams"] == 1, 10, 0.05, "the slot of the client that left")
    finally:
        first.close()
        second.close()
    wait_for(lambda: health(limited)["event_streams"] == 0, 10, 0.05, "every stream's slot back")


def health(api) -> dict:
    answer = api.request("GET", "/health")
    assert answer.status == 200, answer
    return answer.json
