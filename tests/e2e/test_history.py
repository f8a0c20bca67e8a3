"""`GET /<type>` through bin/api: tasks posted and performed, listed page by page and filtered;
bad filters refused with their reason; old tasks pruned by the API itself."""

from __future__ import annotations

import datetime as dt
import urllib.parse

import pytest
from sqlalchemy import delete, func, select

from tasker.clock import utcnow
from tasker.storage.models import RESPONSE, TASK, EndpointRegistration
from tests.helpers import unique, wait_for
from tests.integration.task_rows import add_task

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
PORT, PRUNING_PORT = 19111, 19112
CONSOLES = ["console1", "console2"]


@pytest.fixture(scope="module")
def api(cluster, database):
    with database.transaction() as session:  # earlier tests may have registered other endpoints
        session.execute(delete(EndpointRegistration).where(EndpointRegistration.endpoint.notin_(CONSOLES)))
    fast = {"TASKER_TEST_HANDLER_WAIT": "0"}
    for endpoint in CONSOLES:
        cluster.manager(endpoint, "worker", env=fast)
    cluster.manager("console1", "backup", env=fast)
    return cluster.api(PORT)[1]


def history(api, task_type: str, **filters) -> dict:
    """One page: the answer's body, asserting it is a 200."""
    answer = api.request("GET", "/%s?%s" % (task_type, urllib.parse.urlencode(filters)))
    assert answer.status == 200, answer
    return answer.json


def every_task(api, task_type: str, **filters) -> list[dict]:
    """Every listed task, following `next` until it is null."""
    tasks, page = [], history(api, task_type, **filters)
    while True:
        tasks += page["tasks"]
        if page["next"] is None:
            return tasks
        page = history(api, task_type, **dict(filters, cursor=page["next"]))


def test_posted_tasks_are_listed_newest_first_page_by_page_without_payloads(api):
    prefix = unique("list")
    identifiers = ["%s-%d" % (prefix, number) for number in range(5)]
    for identifier in identifiers:
        assert api.post("worker", {"identifier": identifier, "payload": {"big": "x" * 1000}}).status == 201
    for identifier in identifiers:
        api.wait_status("worker", identifier, ("DONE",))

    first = history(api, "worker", identifier=prefix, limit=2)
    assert len(first["tasks"]) == 2 and isinstance(first["next"], str)
    listed = every_task(api, "worker", identifier=prefix, limit=2)
    assert [task["identifier"] for task in listed] == identifiers[::-1]
    read = api.get("worker", identifiers[0]).json["task"]
    assert listed[-1] == {key: value for key, value in read.items() if key != "payload"}
    assert listed[-1]["settled"] is True and listed[-1]["counts"]["succeeded"] == 2
    assert history(api, "worker", identifier=prefix, limit=5)["next"] is None


def test_filters_find_the_failed_the_named_and_those_of_a_time(api):
    prefix = unique("filter")
    both, alone, failed = prefix + "-both", prefix + "-alone", prefix + "-failed"
    assert api.post("worker", {"identifier": both, "endpoints": CONSOLES}).status == 201
    assert api.post("worker", {"identifier": alone, "endpoints": ["console2"]}).status == 201
    assert api.post("backup", {"identifier": failed, "endpoints": ["console1"]}).status == 201
    for task_type, identifier in (("worker", both), ("worker", alone), ("backup", failed)):
        api.wait_status(task_type, identifier, ("DONE",))

    def listed(task_type: str, **filters) -> list[str]:
        return [task["identifier"] for task in every_task(api, task_type, identifier=prefix, **filters)]

    assert listed("worker", endpoint="console1") == [both]
    assert listed("worker", endpoint="console2") == [alone, both]
    assert listed("worker", endpoint="console2", state="succeeded", status="DONE") == [alone, both]
    assert listed("worker", state="failed") == [] and listed("backup", state="failed") == [failed]
    assert listed("backup", endpoint="console1", state="failed") == [failed]
    assert listed("worker", status="INCOMPLETE") == []
    start = api.get("worker", both).json["task"]["start_time"]
    assert both in listed("worker", since=start, until=start)
    later = (dt.datetime.strptime(start, "%Y-%m-%d %H:%M:%S") + dt.timedelta(hours=1)).strftime("%Y-%m-%d %H:%M:%S")
    assert listed("worker", since=later) == []


BAD_FILTERS = [
    ("status=done", "status must be one of CREATED, SENT, DONE, INCOMPLETE, CANCELLED"),
    ("state=FAILED", "state must be one of queued"),
    ("endpoint=a%20b", "endpoint must be an endpoint name"),
    ("identifier=50%25", "identifier must be the start of an identifier"),
    ("identifier=", "identifier must be the start of an identifier"),
    ("since=2024-01-01T00:00:00", "since must be a UTC time as YYYY-MM-DD HH:MM:SS"),
    ("until=2024-02-30%2000:00:00", "until must be a UTC time"),
    ("since=2024-02-01%2000:00:00&until=2024-01-01%2000:00:00", "since (2024-02-01 00:00:00) is after until"),
    ("limit=0", "limit must be a whole number from 1 to 500"),
    ("limit=501", "limit must be a whole number from 1 to 500"),
    ("limit=1e2", "limit must be a whole number"),
    ("cursor=forged", "cursor 'forged' is not one this API gave out"),
    ("cursor=%21%21", "is not one this API gave out"),
    ("cursor=MjAyNjEzMzIwMDAwMDAwMDAwMDAuNQ", "is not one this API gave out"),  # month 13, base64 of a position
    ("statuss=DONE", "unknown query parameter 'statuss'"),
]


@pytest.mark.parametrize("query,reason", BAD_FILTERS, ids=[query for query, _ in BAD_FILTERS])
def test_a_bad_filter_is_a_400_that_says_why(api, query, reason):
    answer = api.request("GET", "/worker?" + query)
    assert answer.status == 400 and reason in answer.json["error"]["message"], answer


def test_the_api_prunes_old_settled_tasks_with_their_responses(cluster, api, database):
    old = utcnow() - dt.timedelta(days=120)
    pruned = add_task(database, "worker", unique("ancient"), old, {"console1": "succeeded"})
    kept = add_task(database, "worker", unique("ancient"), old, {"console1": "running"}, status="SENT")
    cluster.api(PRUNING_PORT)  # an API prunes when it starts, and hourly afterwards

    def rows(task_id: int) -> int:
        with database.connection() as connection:
            return connection.execute(select(func.count()).where(RESPONSE.c.task_id == task_id)).scalar_one()

    wait_for(lambda: rows(pruned) == 0, 30, 0.2, "the old task's responses to be deleted")
    with database.connection() as connection:
        assert connection.execute(select(TASK.c.id).where(TASK.c.id.in_([pruned, kept]))).scalars().all() == [kept]
    assert rows(kept) == 1
