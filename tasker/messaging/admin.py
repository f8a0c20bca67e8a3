"""Create (or reset) the RabbitMQ vhost, user and permissions of a configuration.

With `rabbitmq.management_url` set, the management HTTP API is used with the superuser
credentials of `rabbitmq.*`; otherwise `rabbitmqctl` on this host.
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
from tasker.messaging.topology import expiry_policy

log = logging.getLogger(__name__)


def setup_vhost(admin: RabbitmqConfig, settings: MessageQueueConfig, reset: bool = False) -> None:
    """Make the vhost, the user with its password, full permissions on the vhost, and the
    policy that deletes idle endpoint queues exist."""
    tool = _Management(admin) if admin.management_url else _Rabbitmqctl(admin.rabbitmqctl)
    if reset:
        tool.delete_vhost(settings.virtual_host)
    tool.add_vhost(settings.virtual_host)
    tool.set_user(settings.username, settings.password)
    tool.set_permissions(settings.virtual_host, settings.username)
    name, pattern, definition = expiry_policy(settings.exchange, settings.queue_expires)
    tool.set_policy(settings.virtual_host, name, pattern, definition)
    log.info("RabbitMQ vhost %s and user %s are ready", settings.virtual_host, settings.username)


class _Rabbitmqctl:
    def __init__(self, command: str) -> None:
        self.command = command

    def _run(self, *args: str, ok_if: tuple[str, ...] = ()) -> None:
        try:
            done = subprocess.run([self.command, *args], capture_output=True, text=True, timeout=120)
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
        """Create the user, or set the password of the one that exists."""
        self._run("add_user", username, password, ok_if=("already_exists", "already exists"))
        self._run("change_password", username, password)

    def set_permissions(self, vhost: str, username: str) -> None:
        """Give the user every permission on the vhost."""
        self._run("set_permissions", "-p", vhost, username, ".*", ".*", ".*")

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

    def set_permissions(self, vhost: str, username: str) -> None:
        """Give the user every permission on the vhost."""
        body = {"configure": ".*", "write": ".*", "read": ".*"}
        self._call("PUT", "/api/permissions/%s/%s" % (_quote(vhost), _quote(username)), body)

    def set_policy(self, vhost: str, name: str, pattern: str, definition: dict) -> None:
        """Create or replace a policy for the vhost's queues."""
        body = {"pattern": pattern, "definition": definition, "apply-to": "queues", "priority": 0}
        self._call("PUT", "/api/policies/%s/%s" % (_quote(vhost), _quote(name)), body)


def _quote(name: str) -> str:
    return urllib.parse.quote(name, safe="")
