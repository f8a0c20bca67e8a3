"""Webhooks through the real processes: bin/api POSTs each event a webhook wants, signed, to a
receiver in the test, once and in order per task, across receiver outages, API restarts and
several API processes; a redirect is not followed and no URL but a configured one is called."""

from __future__ import annotations

import json
import signal

import pytest
import yaml
from sqlalchemy import select

from tasker.storage.events import read_events
from tasker.storage.models import WEBHOOK_CURSOR, WEBHOOK_DELIVERY
from tasker.webhooks import webhook_key
from tests.e2e.webhook_receiver import Receiver
from tests.helpers import ROOT, unique, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
PORTS = (19125, 19126)
CONSOLES = ["console1", "console2"]
SECRET = "webhook-secret-of-the-tests"


@pytest.fixture(scope="module")
def managers(cluster):
    for task_type in ("worker", "backup"):
        for endpoint in CONSOLES:
            cluster.manager(endpoint, task_type)


@pytest.fixture
def receivers():
    """Receivers made by the test, stopped at its end."""
    made: list[Receiver] = []

    def make(**options) -> Receiver:
        made.append(Receiver(**options))
        return made[-1]

    yield make
    for receiver in made:
        receiver.stop()


def configured(directory, *webhooks: dict) -> dict[str, str]:
    """The environment of an API whose test configuration has these webhooks, each secret
    given as an environment variable."""
    raw = yaml.safe_load((ROOT / "config" / "test.config.yaml").read_text())
    raw["api"]["webhooks"] = [dict(webhook, secret="{TASKER_TEST_WEBHOOK_SECRET}") for webhook in webhooks]
    directory.mkdir(exist_ok=True)
    (directory / "test.config.yaml").write_text(yaml.safe_dump(raw))
    return {"TASKER_CONFIG_DIR": str(directory), "TASKER_TEST_WEBHOOK_SECRET": SECRET}


def wait_started(database, *receivers: Receiver) -> None:
    """Wait until an API made each receiver's webhook its cursor: events from then on are its."""

    def started():
        with database.connection() as connection:
            keys = set(connection.execute(select(WEBHOOK_CURSOR.c.webhook)).scalars())
        return all(webhook_key(receiver.url) in keys for receiver in receivers)

    wait_for(started, 30, 0.1, "the webhooks' cursors")


def post_tasks(api, count: int, task_type: str = "worker") -> list[str]:
    identifiers = [unique("hook") for _ in range(count)]
    for identifier in identifiers:
        assert api.post(task_type, {"identifier": identifier, "endpoints": CONSOLES}).status == 201
    return identifiers


def settled(receiver: Receiver, identifiers: list[str]) -> bool:
    """Whether the receiver got the event of each task settling (the last of its events)."""
    done = {
        r.event["data"]["identifier"]
        for r in receiver.got()
        if r.event["event"] == "task" and r.event["data"]["settled"]
    }
    return set(identifiers) <= done


def wait_settled(receiver: Receiver, identifiers: list[str], timeout: float = 90) -> None:
    wait_for(lambda: settled(receiver, identifiers), timeout, 0.2, "the receiver to get every task settled")


def stored_events(database, task_type: str, identifier: str, kinds=("task", "response")) -> list[dict]:
    with database.connection() as connection:
        found = read_events(connection, 0, 1000, task_type, identifier)
    return [{"id": str(e.id), "event": e.kind, "data": json.loads(e.data)} for e in found if e.kind in kinds]


def assert_each_event_once_in_order(receiver, database, identifiers, task_type="worker", kinds=("task", "response")):
    """The receiver got every event of these tasks signed, once (by delivery id and by event
    id), each task's in the order they happened, and no event of another type or kind (tasks
    of other tests in the same database may show up: the webhook wants every task of its type)."""
    got = receiver.events(SECRET)
    deliveries = [r.delivery for r in got]
    assert len(deliveries) == len(set(deliveries))
    assert all(r.event["data"]["type"] == task_type and r.event["event"] in kinds for r in got)
    mine = {r.event["data"]["identifier"] for r in got if r.event["data"]["identifier"].startswith("hook-")}
    assert sorted(mine) == sorted(identifiers)
    for identifier in identifiers:
        arrived = [r.event for r in got if r.event["data"]["identifier"] == identifier]
        assert arrived == stored_events(database, task_type, identifier, kinds)


def delivery_rows(database, receiver: Receiver) -> list:
    with database.connection() as connection:
        query = select(WEBHOOK_DELIVERY).where(WEBHOOK_DELIVERY.c.webhook == webhook_key(receiver.url))
        return connection.execute(query.order_by(WEBHOOK_DELIVERY.c.id)).all()


def test_every_event_a_webhook_wants_arrives_once_signed_and_in_order(
    managers, fresh_cluster, database, receivers, tmp_path
):
    workers, backups = receivers().start(), receivers().start()
    env = configured(
        tmp_path,
        {"url": workers.url, "types": ["worker"]},
        {"url": backups.url, "types": ["backup"], "events": ["task"]},
    )
    api = fresh_cluster.api(PORTS[0], env)[1]
    wait_started(database, workers, backups)
    worker_tasks, backup_tasks = post_tasks(api, 5), post_tasks(api, 2, "backup")
    wait_settled(workers, worker_tasks)
    wait_settled(backups, backup_tasks)
    assert_each_event_once_in_order(workers, database, worker_tasks)
    assert_each_event_once_in_order(backups, database, backup_tasks, "backup", kinds=("task",))
    got = workers.got()[0]
    assert got.headers["x-tasker-delivery"].isdigit() and got.headers["user-agent"].startswith("tasker/")


def test_events_posted_while_the_receiver_was_down_arrive_once_it_is_back(
    managers, fresh_cluster, database, receivers, tmp_path
):
    receiver = receivers()  # not listening yet
    api = fresh_cluster.api(PORTS[0], configured(tmp_path, {"url": receiver.url}))[1]
    wait_started(database, receiver)
    identifiers = post_tasks(api, 3)
    for identifier in identifiers:
        api.wait_status("worker", identifier, ("DONE",))

    def retried():  # each task's first delivery failed again and again; its later ones wait behind it
        rows, first = delivery_rows(database, receiver), {}
        for row in rows:
            first.setdefault(row.identifier, row)
        heads = list(first.values())
        waiting = [row for row in rows if row not in heads]
        return (
            len(heads) == len(identifiers)
            and all(row.attempts >= 2 and row.last_error for row in heads)
            and all(row.attempts == 0 for row in waiting)
        )

    wait_for(retried, 30, 0.2, "the first deliveries to be tried and retried")
    assert receiver.got() == []
    receiver.start()
    wait_settled(receiver, identifiers, timeout=60)
    assert_each_event_once_in_order(receiver, database, identifiers)
    assert all(row.delivered_time is not None for row in delivery_rows(database, receiver))


def test_two_api_processes_send_each_event_once(managers, fresh_cluster, database, receivers, tmp_path):
    receiver = receivers().start()
    env = configured(tmp_path, {"url": receiver.url})
    apis = [fresh_cluster.api(port, env)[1] for port in PORTS]
    wait_started(database, receiver)
    identifiers = []
    for number in range(20):
        identifiers += post_tasks(apis[number % 2], 1)
    wait_settled(receiver, identifiers)
    assert_each_event_once_in_order(receiver, database, identifiers)
    assert {row.attempts for row in delivery_rows(database, receiver)} == {1}


@pytest.mark.parametrize("how", ["stopped", "killed"])
def test_an_api_restarted_in_the_middle_loses_no_event(managers, fresh_cluster, database, receivers, tmp_path, how):
    receiver = receivers(delay=0.05).start()  # slow enough for deliveries to be under way at the stop
    env = configured(tmp_path, {"url": receiver.url})
    process, api = fresh_cluster.api(PORTS[0], env)
    wait_started(database, receiver)
    identifiers = post_tasks(api, 10)
    wait_for(lambda: len(receiver.got()) >= 5, 30, 0.05, "the first deliveries")
    if how == "killed":  # its claims run out (30 s), then the next API sends what they held
        process.signal(signal.SIGKILL)
        process.popen.wait()
    assert process.stop() == (0 if how == "stopped" else -signal.SIGKILL)
    identifiers += post_tasks(fresh_cluster.api(PORTS[0], env)[1], 10)
    wait_settled(receiver, identifiers, timeout=120)
    got = receiver.events(SECRET)
    first = {}
    for received in got:  # a delivery sent again keeps its delivery id and its event
        assert first.setdefault(received.delivery, received.event) == received.event
    for identifier in identifiers:
        arrived = [event for event in first.values() if event["data"]["identifier"] == identifier]
        assert arrived == stored_events(database, "worker", identifier)


def test_a_redirect_is_not_followed_and_counts_as_a_failure(managers, fresh_cluster, database, receivers, tmp_path):
    elsewhere = receivers().start()  # not configured: it must never be called
    redirecting = receivers(status=302, location=elsewhere.url).start()
    api = fresh_cluster.api(PORTS[0], configured(tmp_path, {"url": redirecting.url}))[1]
    wait_started(database, redirecting)
    (identifier,) = post_tasks(api, 1)
    api.wait_status("worker", identifier, ("DONE",))  # its events are all made before the next test

    def retried():
        rows = delivery_rows(database, redirecting)
        return rows and rows[0].attempts >= 3 and rows[0].last_error == "HTTP 302: redirects are not followed"

    wait_for(retried, 30, 0.2, "the redirected delivery to be retried")
    got = redirecting.events(SECRET)
    assert len({r.delivery for r in got}) == 1 and len(got) >= 3  # the task's first event, again and again
    assert elsewhere.got() == []


def test_a_webhook_removed_from_the_config_is_called_no_more_and_a_new_one_starts_afresh(
    managers, fresh_cluster, database, receivers, tmp_path
):
    old, new = receivers().start(), receivers().start()
    process, api = fresh_cluster.api(PORTS[0], configured(tmp_path / "old", {"url": old.url}))
    wait_started(database, old)
    (first,) = post_tasks(api, 1)
    wait_settled(old, [first])
    assert process.stop() == 0

    api = fresh_cluster.api(PORTS[0], configured(tmp_path / "new", {"url": new.url}))[1]
    wait_started(database, new)
    (second,) = post_tasks(api, 1)
    wait_settled(new, [second])
    assert_each_event_once_in_order(old, database, [first])
    assert_each_event_once_in_order(new, database, [second])
