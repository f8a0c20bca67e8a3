"""Create (or reset) the RabbitMQ vhost, users and permissions of a configuration.

With `rabbitmq.management_url` set, the management HTTP API is used with the superuser
credentials of `rabbitmq.*`; otherwise `rabbitmqctl` on this host, which is given passwords on
its standard input, never on its command line (where `ps` would show them).

Deregistering an endpoint deletes its queue and exchange over AMQP (`tasker.messaging.removal`).
"""

from __future__ import annotations

import base64
import json
import logging
import subprocess
import urllib.error
import urllib.parse
import urllib.request

from tasker.config import MessageQueueConfig, RabbitmqConfig
from tasker.errors import SetupError
from tasker.messaging.rights import Rights, broker_users, uses_role_users
from tasker.messaging.topology import expiry_policy

log = logging.getLogger(__name__)


def setup_vhost(admin: RabbitmqConfig, settings: MessageQueueConfig, reset: bool = False) -> None:
    """Make the vhost, its users with their passwords and rights, and the policy that deletes
    idle endpoint queues exist.

    The users are the API's and the endpoints' when `rabbitmq.api_user`/`endpoint_users` name
    them, each with only the rights of its role; otherwise the one user of
    `manager.message_queue`, with every right on the vhost.
    """
    users = broker_users(admin, settings)
    tool = _Management(admin) if admin.management_url else _Rabbitmqctl(admin.rabbitmqctl)
    if reset:
        tool.delete_vhost(settings.virtual_host)
    tool.add_vhost(settings.virtual_host)
    for user in users:
        tool.set_user(user.username, user.password)
        tool.set_permissions(settings.virtual_host, user.username, user.rights)
        log.info("RabbitMQ user %s is ready: %s", user.username, _describe(user.rights))
    name, pattern, definition = expiry_policy(settings.exchange, settings.queue_expires)
    tool.set_policy(settings.virtual_host, name, pattern, definition)
    if uses_role_users(admin) and settings.username not in {user.username for user in users}:
        log.warning(
            "manager.message_queue.username %s is not one of the role users; it is left as it is "
            "(delete it with rabbitmqctl delete_user once no host logs in as it)",
            settings.username,
        )
    log.info("RabbitMQ vhost %s is ready", settings.virtual_host)


def _describe(rights: Rights) -> str:
    return "configure %s, write %s, read %s" % (rights.configure, rights.write, rights.read)


class _Rabbitmqctl:
    def __init__(self, command: str) -> None:
        self.command = command

    def _run(self, *args: str, ok_if: tuple[str, ...] = (), stdin: str | None = None) -> None:
        try:
            done = subprocess.run([self.command, *args], input=stdin, capture_output=True, text=True, timeout=120)
        except FileNotFoundError as exc:
            raise SetupError(
                "%s not found: install RabbitMQ here or set rabbitmq.management_url" % self.command
            ) from exc
        except subprocess.TimeoutExpired as exc:
            raise SetupError("%s %s took over 120s" % (self.command, args[0])) from exc
        output = (done.stdout + done.stderr).strip()
        if done.returncode != 0 and not any(text in output for text in ok_if):
            raise SetupError(
                "%s %s failed: %s" % (self.command, args[0], output.splitlines()[-1] if output else done.returncode)
            )

    def delete_vhost(self, vhost: str) -> None:
        """Delete the vhost with its queues, if it exists."""
        self._run("delete_vhost", vhost, ok_if=("not_found", "does not exist"))

    def add_vhost(self, vhost: str) -> None:
        """Create the vhost unless it exists."""
        self._run("add_vhost", vhost, ok_if=("already_exists", "already exists"))

    def set_user(self, username: str, password: str) -> None:
        """Create the user, or set the password of the one that exists; the password goes
        through standard input, which rabbitmqctl reads when the command line has none."""
        _check_stdin_password(username, password)
        line = password + "\n"
        self._run("add_user", username, ok_if=("already_exists", "already exists"), stdin=line)
        self._run("change_password", username, stdin=line)

    def set_permissions(self, vhost: str, username: str, rights: Rights) -> None:
        """Give the user these rights on the vhost (replacing what it had)."""
        self._run("set_permissions", "-p", vhost, username, rights.configure, rights.write, rights.read)

    def set_policy(self, vhost: str, name: str, pattern: str, definition: dict) -> None:
        """Create or replace a policy for the vhost's queues."""
        self._run("set_policy", "-p", vhost, "--apply-to", "queues", name, pattern, json.dumps(definition))


class _Management:
    def __init__(self, admin: RabbitmqConfig) -> None:
        self.base = admin.management_url.rstrip("/")
        token = base64.b64encode(("%s:%s" % (admin.username, admin.password)).encode()).decode()
        self.headers = {"Authorization": "Basic " + token, "Content-Type": "application/json"}

    def _call(self, method: str, path: str, body: dict | None = None, ok: tuple = ()) -> None:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, method=method, headers=self.headers)
        try:
            urllib.request.urlopen(request, timeout=30).close()
        except urllib.error.HTTPError as exc:
            if exc.code not in ok:
                raise SetupError("RabbitMQ management %s %s: HTTP %d" % (method, path, exc.code)) from exc
        except urllib.error.URLError as exc:
            raise SetupError("cannot reach RabbitMQ management at %s: %s" % (self.base, exc.reason)) from exc

    def delete_vhost(self, vhost: str) -> None:
        """Delete the vhost with its queues, if it exists."""
        self._call("DELETE", "/api/vhosts/" + _quote(vhost), ok=(404,))

    def add_vhost(self, vhost: str) -> None:
        """Create the vhost unless it exists."""
        self._call("PUT", "/api/vhosts/" + _quote(vhost))

    def set_user(self, username: str, password: str) -> None:
        """Create the user, or set the password of the one that exists."""
        self._call("PUT", "/api/users/" + _quote(username), {"password": password, "tags": ""})

    def set_permissions(self, vhost: str, username: str, rights: Rights) -> None:
        """Give the user these rights on the vhost (replacing what it had)."""
        body = {"configure": rights.configure, "write": rights.write, "read": rights.read}
        self._call("PUT", "/api/permissions/%s/%s" % (_quote(vhost), _quote(username)), body)

    def set_policy(self, vhost: str, name: str, pattern: str, definition: dict) -> None:
        """Create or replace a policy for the vhost's queues."""
        body = {"pattern": pattern, "definition": definition, "apply-to": "queues", "priority": 0}
        self._call("PUT", "/api/policies/%s/%s" % (_quote(vhost), _quote(name)), body)


def _quote(name: str) -> str:
    return urllib.parse.quote(name, safe="")


def _check_stdin_password(username: str, password: str) -> None:
    """rabbitmqctl reads one line and trims white space from both its ends: refuse a password it
    would change rather than create a user whose password is not the configured one."""
    if not password or password != password.strip() or "\n" in password or "\r" in password:
        raise SetupError(
            "the password of RabbitMQ user %s is empty, spans lines, or starts or ends with white space: "
            "rabbitmqctl cannot take it; change it, or set rabbitmq.management_url" % username
        )
