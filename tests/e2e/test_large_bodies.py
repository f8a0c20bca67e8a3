"""Large legal bodies: parsed off the IOLoop, stored and answered as they came."""

from __future__ import annotations

import os
import threading

import pytest

from bench.large_bodies import nested_payload
from tests.helpers import unique

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
PARSING = {"TASKER_TEST_PARSE_PROCESSES": os.environ.get("TASKER_TEST_PARSE_PROCESSES", "2")}


def test_sixteen_one_mib_posts_do_not_hold_the_ioloop(fresh_cluster):
    fresh_cluster.manager("large-1")
    _, api = fresh_cluster.api(19032, env=PARSING)
    payload = nested_payload(1_000_000)
    identifiers = [unique("large") for _ in range(16)]
    answers: dict[str, int] = {}

    def post(identifier: str) -> None:
        answers[identifier] = api.post(
            "worker", {"identifier": identifier, "payload": payload, "endpoints": ["large-1"]}
        ).status

    api.request("GET", "/health")  # the lag of the API's start is not this test's
    posting = [threading.Thread(target=post, args=(identifier,)) for identifier in identifiers]
    for thread in posting:
        thread.start()
    for thread in posting:
        thread.join(120)
    assert sorted(answers.values()) == [201] * 16, answers
    health = api.request("GET", "/health").json
    assert health["loop_lag_ms"] < 100, "a callback held the IOLoop for %s ms" % health["loop_lag_ms"]
    stored = api.request("GET", "/worker/" + identifiers[0]).json["task"]
    assert stored["payload"] == payload, "stored and answered as sent"


@pytest.fixture
def small_packets(database):
    """The database's max_allowed_packet lowered to 512 KiB for the connections opened meanwhile."""
    from sqlalchemy import text

    with database.engine.connect() as connection:
        before = connection.execute(text("SELECT @@GLOBAL.max_allowed_packet")).scalar_one()
        connection.execute(text("SET GLOBAL max_allowed_packet = 524288"))
    try:
        yield
    finally:
        with database.engine.connect() as connection:
            connection.execute(text("SET GLOBAL max_allowed_packet = %d" % before))


def test_a_task_too_large_for_the_database_is_413_and_the_api_goes_on(fresh_cluster, small_packets):
    _, api = fresh_cluster.api(19034)
    identifier = unique("packet")
    answer = api.post("worker", {"identifier": identifier, "payload": "x" * 700_000, "endpoints": ["p-1"]})
    assert answer.status == 413, answer
    assert "max_allowed_packet" in answer.json["error"]["message"]
    assert api.request("GET", "/worker/" + identifier).status == 404, "nothing stored"
    assert api.post("worker", {"identifier": unique("fits"), "endpoints": ["p-1"]}).status in (201, 202)
