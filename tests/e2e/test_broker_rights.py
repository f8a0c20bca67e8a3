"""Broker users per role on the real RabbitMQ: an endpoint's user consumes its own queues only,
publishes no task and puts nothing into another endpoint's queue; the API's user publishes tasks
and reads no queue; an API and managers logged in as them complete tasks, renew long ones and set
bad messages aside. The module works in a vhost of its own and deletes it, and its users, at the
end."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import subprocess
import uuid

import pika
import pytest

from tasker.messaging.rights import api_rights, endpoint_rights
from tasker.messaging.topology import (
    REASON_HEADER,
    dead_letter_name,
    endpoint_exchange,
    queue_arguments,
    queue_name,
    tasks_exchange,
)
from tests.helpers import BIN, ROOT, process_env, unique, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

VHOST = "%s-rights" % os.environ.get("TASKER_TEST_VHOST", "tasker_test")
PREFIX = "tasker.rights"
TASKS = tasks_exchange(PREFIX)
ARGUMENTS = queue_arguments(PREFIX, os.environ.get("TASKER_TEST_QUEUE_TYPE") or "classic")
_SUFFIX = uuid.uuid4().hex[:8]
# Role -> (username, password); the passwords hold what a shell or YAML would take apart.
LOGINS = {
    role: ("rights-%s-%s" % (role.lower(), _SUFFIX), "*s3cret: %s yes!" % secrets.token_hex(8))
    for role in ("API", "CONSOLE1", "CONSOLE2")
}


def queue(task_type: str, endpoint: str) -> str:
    """An endpoint queue of this module's prefix."""
    return queue_name(PREFIX, task_type, endpoint)


def role_env(login: str | None = None) -> dict[str, str]:
    """The environment of a process in this module's vhost with users per role, logged in as
    `login` (API, CONSOLE1 or CONSOLE2)."""
    env = {"TASKER_TEST_VHOST": VHOST, "TASKER_TEST_EXCHANGE": PREFIX}
    for role, (username, password) in LOGINS.items():
        env["TASKER_TEST_RABBITMQ_%s_USER" % role] = username
        env["TASKER_TEST_RABBITMQ_%s_PASSWD" % role] = password
    if login is not None:
        env["TASKER_TEST_RABBITMQ_USER"], env["TASKER_TEST_RABBITMQ_PASSWD"] = LOGINS[login]
    return env


def rabbitmqctl(*args: str, check: bool = True) -> str:
    done = subprocess.run(["rabbitmqctl", *args], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 or not check, done.stdout + done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def role_users(test_config):
    """`bin/initialize -r` with users per role, in a vhost of this module's own."""
    done = subprocess.run(
        [str(BIN / "initialize"), "--mode", "test", "-r"],
        cwd=ROOT,
        env=process_env(**role_env()),
        capture_output=True,
        text=True,
        timeout=300,
    )
    try:
        assert done.returncode == 0, done.stdout + done.stderr
        rabbitmqctl("set_permissions", "-p", VHOST, "guest", ".*", ".*", ".*")  # the tests' own view
        yield
    finally:
        rabbitmqctl("delete_vhost", VHOST, check=False)
        for username, _ in LOGINS.values():
            rabbitmqctl("delete_user", username, check=False)


@contextlib.contextmanager
def channel_as(role: str):
    """A channel on this module's vhost, logged in as a role's user (or `guest`, the admin)."""
    username, password = ("guest", "guest") if role == "guest" else LOGINS[role]
    parameters = pika.ConnectionParameters("127.0.0.1", 5672, VHOST, pika.PlainCredentials(username, password))
    connection = pika.BlockingConnection(parameters)
    try:
        yield connection.channel()
    finally:
        if connection.is_open:
            connection.close()


def assert_refused(role: str, action) -> None:
    """`action(channel)` as that role is refused by the broker with ACCESS_REFUSED."""
    with channel_as(role) as channel:
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as refused:
            action(channel)
    assert refused.value.reply_code == 403, refused.value


def publish(channel, exchange: str, routing_key: str, body: bytes) -> None:
    """Publish with confirms and `mandatory`, as tasker does, and wait for the broker's answer."""
    channel.confirm_delivery()
    channel.basic_publish(exchange, routing_key, body, mandatory=True)


def depth(name: str) -> int:
    with channel_as("guest") as channel:
        return channel.queue_declare(name, passive=True).method.message_count


def test_initialize_gives_the_api_and_each_endpoint_a_user_with_the_rights_of_its_role(role_users):
    listed = json.loads(rabbitmqctl("list_permissions", "-p", VHOST, "--formatter", "json"))
    granted = {row["user"]: (row["configure"], row["write"], row["read"]) for row in listed}
    expected = {
        LOGINS["API"][0]: api_rights(PREFIX),
        LOGINS["CONSOLE1"][0]: endpoint_rights(PREFIX, ["console1"]),
        LOGINS["CONSOLE2"][0]: endpoint_rights(PREFIX, ["console2"]),
    }
    assert set(granted) == {*expected, "guest"}, "no user with every right but the tests' admin"
    for username, rights in expected.items():
        assert granted[username] == (rights.configure, rights.write, rights.read)


def test_an_endpoint_user_consumes_its_own_queue_what_the_api_user_published(role_users):
    own, body = queue("sleeper", "console1"), unique("own").encode()
    with channel_as("API") as channel:
        publish(channel, TASKS, own, body)
    with channel_as("CONSOLE1") as channel:
        channel.queue_declare(own, durable=True, arguments=ARGUMENTS)
        _, _, received = channel.basic_get(own, auto_ack=True)
        assert received == body
        channel.basic_consume(own, lambda *delivery: None)


def test_an_endpoint_user_can_neither_read_nor_declare_nor_bind_another_endpoints_queue(role_users):
    other = queue("sleeper", "console2")
    assert_refused("CONSOLE1", lambda channel: channel.basic_consume(other, lambda *delivery: None))
    assert_refused("CONSOLE1", lambda channel: channel.basic_get(other))
    assert_refused("CONSOLE1", lambda channel: channel.queue_purge(other))
    assert_refused("CONSOLE1", lambda channel: channel.queue_delete(other))
    assert_refused("CONSOLE1", lambda channel: channel.queue_declare(other, durable=True, arguments=ARGUMENTS))
    assert_refused("CONSOLE1", lambda channel: channel.queue_bind(other, TASKS, routing_key=other))


def test_an_endpoint_user_cannot_publish_a_task(role_users):
    assert_refused("CONSOLE1", lambda channel: publish(channel, TASKS, queue("sleeper", "console2"), b"{}"))
    assert_refused("CONSOLE1", lambda channel: publish(channel, TASKS, queue("sleeper", "console1"), b"{}"))


def test_an_endpoint_user_cannot_put_a_message_into_another_endpoints_queue(role_users):
    other = queue("sleeper", "console2")
    others_exchange = endpoint_exchange(PREFIX, "sleeper", "console2")
    own_exchange = endpoint_exchange(PREFIX, "sleeper", "console1")
    with channel_as("guest") as channel:  # console2's exchange as its manager declares it
        channel.exchange_declare(others_exchange, "direct", durable=True)
        channel.queue_bind(other, others_exchange, routing_key=other)
    with channel_as("CONSOLE1") as channel:  # its own, as console1's manager declares it
        channel.exchange_declare(own_exchange, "direct", durable=True)
    before = depth(other)
    assert_refused("CONSOLE1", lambda channel: publish(channel, "", other, b"forged"))
    assert_refused("CONSOLE1", lambda channel: publish(channel, "amq.direct", other, b"forged"))
    assert_refused("CONSOLE1", lambda channel: publish(channel, others_exchange, other, b"forged"))
    assert_refused("CONSOLE1", lambda channel: channel.queue_bind(other, own_exchange, routing_key=other))
    assert depth(other) == before


def test_the_api_user_publishes_but_can_neither_consume_nor_create_an_endpoint_queue(role_users):
    own = queue("sleeper", "console1")
    with channel_as("API") as channel:
        publish(channel, TASKS, own, b"{}")
        channel.queue_declare(own, durable=True, arguments=ARGUMENTS)  # again: allowed
    assert_refused("API", lambda channel: channel.basic_consume(own, lambda *delivery: None))
    assert_refused("API", lambda channel: channel.basic_get(own))
    assert_refused("API", lambda channel: channel.queue_purge(own))
    new = queue("sleeper", unique("new"))  # creating a queue with its dead-letter exchange takes read on it
    assert_refused("API", lambda channel: channel.queue_declare(new, durable=True, arguments=ARGUMENTS))


def test_an_api_and_managers_logged_in_as_their_own_users_complete_a_task(role_users, fresh_cluster):
    fresh_cluster.manager("console1", env=role_env("CONSOLE1"))
    fresh_cluster.manager("console2", env=role_env("CONSOLE2"))
    _, api = fresh_cluster.api(19010, env=role_env("API"))
    identifier = unique("roles")
    assert api.post("worker", {"identifier": identifier, "endpoints": ["console1", "console2"]}).status == 201
    body = api.wait_status("worker", identifier, ("DONE",))
    assert [response["state"] for response in body["taskResponseList"]] == ["succeeded", "succeeded"]


def test_a_manager_logged_in_as_its_endpoint_sets_a_bad_message_aside(role_users, fresh_cluster):
    fresh_cluster.manager("console1", env=role_env("CONSOLE1"))
    dead, own = dead_letter_name(PREFIX), queue("worker", "console1")
    before = depth(dead)
    with channel_as("API") as channel:
        publish(channel, TASKS, own, b"not json")
    wait_for(lambda: depth(dead) == before + 1, 20, 0.1, "the bad message to be set aside")
    with channel_as("guest") as channel:
        got = [channel.basic_get(dead, auto_ack=True) for _ in range(before + 1)]
    [(method, properties)] = [(method, properties) for method, properties, body in got if body == b"not json"]
    assert (method.exchange, method.routing_key) == (endpoint_exchange(PREFIX, "worker", "console1"), dead)
    assert properties.headers["x-tasker-queue"] == own and properties.headers[REASON_HEADER]


def test_a_manager_logged_in_as_its_endpoint_renews_a_long_task_through_its_own_exchange(role_users, fresh_cluster):
    own, own_exchange = queue("sleeper", "console1"), endpoint_exchange(PREFIX, "sleeper", "console1")
    env = dict(role_env("CONSOLE1"), TASKER_TEST_CONSUMER_TIMEOUT="2")  # renewed every 0.8 s
    manager = fresh_cluster.manager("console1", "sleeper", env=env)
    _, api = fresh_cluster.api(19040, env=role_env("API"))
    identifier = unique("renewed")
    with channel_as("guest") as spy:  # sees the copies the manager sends through its exchange
        seen = spy.queue_declare("", exclusive=True).method.queue
        spy.queue_bind(seen, own_exchange, routing_key=own)
        created = api.post("sleeper", {"identifier": identifier, "endpoints": ["console1"], "payload": {"seconds": 4}})
        assert created.status == 201
        # A second renewal renews the first copy: that one came back through the manager's queue.
        wait_for(lambda: spy.queue_declare(seen, passive=True).method.message_count >= 2, 20, 0.1, "two renewals")
        for _ in range(2):
            method, properties, body = spy.basic_get(seen, auto_ack=True)
            assert (method.exchange, method.routing_key) == (own_exchange, own)
            assert properties.headers == {"x-tasker-renewal": 1} and properties.expiration is None
            assert json.loads(body)["identifier"] == identifier
    (response,) = api.wait_status("sleeper", identifier, ("DONE",), timeout=30)["taskResponseList"]
    assert (response["state"], response["attempts"]) == ("succeeded", 1)
    assert manager.stop() == 0
    assert depth(own) == 0, "the last copy was acknowledged: nothing comes back to run it again"


def test_deregistering_as_the_api_user_deletes_the_queue_and_the_exchange_of_the_endpoint(role_users, fresh_cluster):
    name = queue("failing", "console2")
    fresh_cluster.manager("console2", "failing", env=role_env("CONSOLE2")).stop()
    with channel_as("guest") as channel:
        channel.exchange_declare(name, passive=True)  # its manager made it
    done = subprocess.run(
        [str(BIN / "initialize"), "--mode", "test", "--deregister", "failing", "console2"],
        cwd=ROOT,
        env=process_env(**role_env("API")),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    with channel_as("guest") as channel:
        with pytest.raises(pika.exceptions.ChannelClosedByBroker, match="NOT_FOUND"):
            channel.exchange_declare(name, passive=True)
    with channel_as("guest") as channel:
        with pytest.raises(pika.exceptions.ChannelClosedByBroker, match="NOT_FOUND"):
            channel.queue_declare(name, passive=True)


def test_a_task_for_an_endpoint_whose_queue_is_gone_is_sent_once_its_manager_declares_it(role_users, fresh_cluster):
    with channel_as("guest") as channel:
        channel.queue_delete(queue("worker", "console2"))
    _, api = fresh_cluster.api(19011, env=role_env("API"))
    identifier = unique("gone")
    answer = api.post("worker", {"identifier": identifier, "endpoints": ["console2"]})
    assert answer.status == 202 and answer.json["status"] == "CREATED", "the API's user may not create the queue"
    fresh_cluster.manager("console2", env=role_env("CONSOLE2"))
    body = api.wait_status("worker", identifier, ("DONE",))
    assert body["taskResponseList"][0]["state"] == "succeeded"


def test_the_api_user_deregisters_a_stopped_endpoint_through_the_api_with_its_queue_and_exchange(
    role_users, fresh_cluster
):
    name = queue("backup", "console2")
    fresh_cluster.manager("console2", "backup", env=role_env("CONSOLE2")).stop()
    _, api = fresh_cluster.api(19101, env=role_env("API"))

    def gone() -> bool:
        listed = api.request("GET", "/endpoints?type=backup").json["endpoints"]
        return any(entry["endpoint"] == "console2" and entry["alive"] is False for entry in listed)

    wait_for(gone, 30, 0.2, "console2 to be not alive")
    answer = api.request("DELETE", "/endpoints/backup/console2")
    assert answer.status == 204, answer
    passive = (lambda ch: ch.exchange_declare(name, passive=True), lambda ch: ch.queue_declare(name, passive=True))
    for declare in passive:
        with channel_as("guest") as channel:
            with pytest.raises(pika.exceptions.ChannelClosedByBroker, match="NOT_FOUND"):
                declare(channel)
