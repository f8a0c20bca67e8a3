"""Broker users and their rights: the regexes of each role, the config that names the users, and
the rabbitmqctl calls that create them without a password on any command line."""

from __future__ import annotations

import json
import re
import subprocess

import pytest

from tasker.config import MessageQueueConfig, load_config
from tasker.config.schema import RabbitmqConfig, RabbitmqUserConfig
from tasker.errors import ConfigError, SetupError
from tasker.messaging import admin
from tasker.messaging.rights import (
    FULL,
    api_rights,
    broker_users,
    endpoint_logins,
    endpoint_rights,
    escape,
)
from tasker.messaging.topology import endpoint_exchange

PREFIX = "tasker"


def granted(pattern: str, name: str) -> bool:
    """Whether RabbitMQ grants a right on `name`: its regex matches somewhere in the name."""
    return re.search(pattern, name) is not None


def role_config(**endpoints: tuple[str, str]) -> RabbitmqConfig:
    users = {endpoint: RabbitmqUserConfig(*login) for endpoint, login in endpoints.items()}
    return RabbitmqConfig(api_user=RabbitmqUserConfig("tasker-api", "api-secret"), endpoint_users=users)


def test_escape_makes_every_regex_character_literal():
    name = r"a.b*c+d?e(f)g[h]i{j}k|l^m$n\o"
    assert granted("^%s$" % escape(name), name)
    assert not granted("^%s$" % escape("a.b"), "axb")
    assert escape("console-1:x_y") == "console-1:x_y"


def test_the_api_declares_and_publishes_but_reads_no_queue():
    rights = api_rights(PREFIX)
    for name in ("tasker.tasks", "tasker.worker.console1", "tasker.backup.db.1:a-b"):
        assert granted(rights.configure, name) and granted(rights.write, name), name
    assert granted(rights.read, "tasker.tasks")  # the source of the bindings it makes
    for name in ("tasker.worker.console1", "tasker.dead-letter", "amq.default", "other.worker.console1"):
        assert not granted(rights.read, name), name
    for name in (
        "tasker.dead-letter",
        "amq.default",
        "xtasker.tasks",
        "taskerxtasks",
        "tasker.Worker.a",
        "tasker.worker.",
    ):
        assert not granted(rights.write, name), name


def test_an_endpoint_consumes_its_own_queues_only_and_publishes_no_task():
    rights = endpoint_rights(PREFIX, ["console1"])
    for name in ("tasker.worker.console1", "tasker.backup.console1"):
        assert all(granted(pattern, name) for pattern in (rights.configure, rights.write, rights.read)), name
    for name in (
        "tasker.worker.console2",
        "tasker.worker.console10",
        "tasker.worker.xconsole1",
        "tasker.worker.a.console1",
    ):
        assert not any(granted(pattern, name) for pattern in (rights.configure, rights.write, rights.read)), name
    assert not granted(rights.write, "tasker.tasks")
    assert granted(rights.configure, "tasker.tasks") and granted(rights.read, "tasker.tasks")
    assert granted(rights.write, "tasker.dead-letter")


def test_an_endpoint_copies_through_its_own_exchange_and_cannot_write_the_default_one():
    rights = endpoint_rights(PREFIX, ["console1"])
    own = endpoint_exchange(PREFIX, "worker", "console1")
    assert all(granted(pattern, own) for pattern in (rights.configure, rights.write, rights.read))
    for name in ("amq.default", "", endpoint_exchange(PREFIX, "worker", "console2"), "amq.direct", "amq.fanout"):
        assert not granted(rights.write, name), name


def test_dots_in_endpoint_names_and_prefixes_are_literal():
    rights = endpoint_rights("my.tasker", ["db.1"])
    assert granted(rights.read, "my.tasker.worker.db.1")
    for name in ("my.tasker.worker.dbx1", "myxtasker.worker.db.1", "my.tasker.worker.db.12"):
        assert not granted(rights.read, name), name


def test_one_user_for_several_endpoints_owns_the_queues_of_each():
    rights = endpoint_rights(PREFIX, ["console2", "console1"])
    assert granted(rights.read, "tasker.worker.console1") and granted(rights.read, "tasker.worker.console2")
    assert not granted(rights.read, "tasker.worker.console3")


def test_without_role_users_one_user_gets_every_right():
    settings = MessageQueueConfig(username="tasker", password="pw")
    [user] = broker_users(RabbitmqConfig(), settings)
    assert (user.username, user.password, user.rights) == ("tasker", "pw", FULL)
    unset = RabbitmqConfig(endpoint_users={"console1": RabbitmqUserConfig("", "")})
    assert broker_users(unset, settings)[0].rights == FULL


def test_role_users_get_the_rights_of_their_role_and_share_a_user_per_host():
    admin_config = role_config(
        console1=("tasker-c", "c-secret"), console2=("tasker-c", "c-secret"), db1=("tasker-d", "d")
    )
    users = {user.username: user for user in broker_users(admin_config, MessageQueueConfig(exchange=PREFIX))}
    assert set(users) == {"tasker-api", "tasker-c", "tasker-d"}
    assert users["tasker-api"].rights == api_rights(PREFIX)
    assert users["tasker-c"].rights == endpoint_rights(PREFIX, ["console1", "console2"])
    assert users["tasker-d"].endpoints == ("db1",)
    assert endpoint_logins(admin_config)["console2"] == ("tasker-c", "c-secret")


@pytest.mark.parametrize(
    "endpoints, message",
    [
        ({"console1": ("tasker-c", "")}, "rabbitmq.endpoint_users.console1.password is empty"),
        ({"console1": ("tasker-api", "x")}, "tasker-api is the API's user"),
        ({"bad/name": ("tasker-c", "x")}, "'bad/name' is not a valid endpoint name"),
        ({"console1": ("tasker-c", "x"), "console2": ("tasker-c", "y")}, "has another password"),
    ],
)
def test_a_role_user_that_cannot_be_made_is_a_configuration_error(endpoints, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        broker_users(role_config(**endpoints), MessageQueueConfig())


def test_the_configuration_names_role_users_and_their_passwords_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("C1_PASSWD", "*s3cret: yes")
    (tmp_path / "x.config.yaml").write_text(
        'task_types: [worker]\nmanager:\n  db:\n    uri: "sqlite://"\nrabbitmq:\n'
        "  api_user: {username: tasker-api, password: a}\n"
        '  endpoint_users:\n    console1: {username: tasker-c1, password: "{C1_PASSWD}"}\n'
    )
    config = load_config("x", tmp_path)
    assert config.rabbitmq.api_user == RabbitmqUserConfig("tasker-api", "a")
    assert config.rabbitmq.endpoint_users == {"console1": RabbitmqUserConfig("tasker-c1", "*s3cret: yes")}


class RecordedRun:
    """Stands in for subprocess.run: records each call and answers success."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[str], str | None]] = []

    def __call__(self, argv, **options):
        self.calls.append((list(argv), options.get("input")))
        return subprocess.CompletedProcess(argv, 0, "", "")


def test_rabbitmqctl_gets_passwords_on_standard_input_never_on_its_command_line(monkeypatch):
    recorded = RecordedRun()
    monkeypatch.setattr(admin.subprocess, "run", recorded)
    admin_config = role_config(console1=("tasker-c1", "c1 *secret!"))
    settings = MessageQueueConfig(username="tasker-api", password="api-secret", virtual_host="v", exchange=PREFIX)
    admin.setup_vhost(admin_config, settings)
    commands = [argv[1] for argv, _ in recorded.calls]
    assert commands.count("add_user") == 2 and commands.count("change_password") == 2
    for argv, stdin in recorded.calls:
        assert not any(secret in part for part in argv for secret in ("api-secret", "c1 *secret!")), argv
        if argv[1] in ("add_user", "change_password"):
            assert len(argv) == 3 and stdin in ("api-secret\n", "c1 *secret!\n"), argv
    permissions = [argv[2:] for argv, _ in recorded.calls if argv[1] == "set_permissions"]
    api = api_rights(PREFIX)
    assert ["-p", "v", "tasker-api", api.configure, api.write, api.read] in permissions


@pytest.mark.parametrize("password", ["", " leading", "trailing ", "two\nlines"])
def test_a_password_rabbitmqctl_would_change_is_refused(monkeypatch, password):
    monkeypatch.setattr(admin.subprocess, "run", RecordedRun())
    with pytest.raises(SetupError, match="rabbitmqctl cannot take it"):
        admin._Rabbitmqctl("rabbitmqctl").set_user("tasker", password)


def test_the_management_api_gets_each_users_rights(monkeypatch):
    sent = []

    class Answer:
        def close(self) -> None:
            pass

    def urlopen(request, timeout):
        sent.append((request.get_method(), request.full_url, json.loads(request.data) if request.data else None))
        return Answer()

    monkeypatch.setattr(admin.urllib.request, "urlopen", urlopen)
    admin_config = RabbitmqConfig(
        management_url="http://mq:15672",
        api_user=RabbitmqUserConfig("tasker-api", "a"),
        endpoint_users={"console1": RabbitmqUserConfig("tasker-c1", "c")},
    )
    admin.setup_vhost(admin_config, MessageQueueConfig(virtual_host="v", exchange=PREFIX))
    rights = endpoint_rights(PREFIX, ["console1"])
    assert ("PUT", "http://mq:15672/api/users/tasker-c1", {"password": "c", "tags": ""}) in sent
    body = {"configure": rights.configure, "write": rights.write, "read": rights.read}
    assert ("PUT", "http://mq:15672/api/permissions/v/tasker-c1", body) in sent
