"""The RabbitMQ users `initialize -r` makes and the rights of each, as configure/write/read regexes.

RabbitMQ grants an operation when the resource's name matches the user's regex for that kind of
right (anywhere in the name, so every regex here is anchored). With prefix `P`, what each role
does on the wire and the right it needs:

The API (`publisher.py`):
- `exchange.declare P.tasks`: configure `P.tasks`.
- `queue.declare P.<type>.<endpoint>` again, every minute and after a returned publish:
  configure on the queue. Creating a queue that does not exist, with its dead-letter exchange,
  would also need read on it and write on `P.dead-letter`: the API is not given them, so it
  cannot create endpoint queues (their managers and `initialize -r` do).
- `queue.bind P.<type>.<endpoint> P.tasks`: write on the queue, read `P.tasks`.
- `basic.publish P.tasks` (mandatory, with CC): write `P.tasks`.
- `queue.delete` and `exchange.delete P.<type>.<endpoint>` (`DELETE /endpoints/<type>/<endpoint>`,
  after a passive `queue.declare` of that queue to count its consumers; `initialize --deregister`):
  configure on that name. Its rights on endpoint names cover the endpoints' exchanges too:
  publishing to one reaches that endpoint's queue, as `P.tasks` does, and `P.dead-letter`.

The manager of endpoint `E` (`consumer.py`):
- `exchange.declare` and `queue.declare P.dead-letter`: configure `P.dead-letter`;
  `queue.unbind P.dead-letter P.dead-letter`: write and read `P.dead-letter`.
- `exchange.declare P.tasks`: configure `P.tasks` (not write: it cannot publish a task).
  `initialize -r` also declares it as each endpoint's user, with that endpoint's queues.
- `queue.declare P.<type>.E` with its dead-letter exchange: configure and read on the queue,
  write `P.dead-letter`; `queue.bind P.<type>.E P.tasks`: write on the queue, read `P.tasks`.
- `basic.consume P.<type>.E`: read on the queue.
- `exchange.declare P.<type>.E` (direct; exchanges and queues have names of their own, and
  this one is named as the queue): configure on that name. `queue.bind P.<type>.E P.<type>.E`
  and `queue.bind P.dead-letter P.<type>.E`: write on those queues, read on that name.
- renewal copies (routing key `P.<type>.E`) and set-aside copies (routing key `P.dead-letter`)
  are published to the exchange `P.<type>.E`: write on that name. Not the default exchange:
  RabbitMQ checks no routing key there, so a write right on `amq.default` would reach every
  queue of the vhost.

What the manager's rights allow beyond that: binding its own queue to `P.tasks` with another
endpoint's routing key (copies of that endpoint's tasks, never the originals), reading and
adding to the set-aside messages in `P.dead-letter`, and deleting `P.tasks` or `P.dead-letter`
(configure covers delete). It can put a message into no other endpoint's queue: binding one
to its exchange takes write on that queue. Every exchange is direct or fanout: topic
permissions, which only topic exchanges check, add nothing.
"""

from __future__ import annotations

import dataclasses
from typing import Iterable

from tasker.config import NAME_PATTERN, MessageQueueConfig, RabbitmqConfig
from tasker.errors import ConfigError
from tasker.messaging.topology import dead_letter_name, tasks_exchange

# What a task type and an endpoint name may be (the config loader's patterns, unanchored): a
# type has no dot, so `P\.<type>\.E` matches the queues of endpoint E and no other.
TASK_TYPE = "[a-z][a-z0-9_]*"
ENDPOINT = "[A-Za-z0-9._:-]+"
_SPECIAL = set("\\^$.|?*+()[]{}")


@dataclasses.dataclass(frozen=True)
class Rights:
    """The configure, write and read regexes of one user on the vhost."""

    configure: str
    write: str
    read: str


FULL = Rights(".*", ".*", ".*")


@dataclasses.dataclass(frozen=True)
class BrokerUser:
    """A user `initialize -r` creates, with its rights; `endpoints` are those whose queues it owns."""

    username: str
    password: str
    rights: Rights
    endpoints: tuple[str, ...] = ()


def escape(name: str) -> str:
    """A regex that matches `name` literally (each regex metacharacter after a backslash)."""
    return "".join("\\" + char if char in _SPECIAL else char for char in name)


def _one_of(*patterns: str) -> str:
    return "^(%s)$" % "|".join(patterns)


def endpoint_queues(prefix: str, endpoints: Iterable[str] | None = None) -> str:
    """A regex (unanchored) of the queues `P.<type>.<endpoint>` of these endpoints, or of all."""
    names = ENDPOINT if endpoints is None else "(%s)" % "|".join(escape(e) for e in sorted(endpoints))
    return "%s\\.%s\\.%s" % (escape(prefix), TASK_TYPE, names)


def api_rights(prefix: str) -> Rights:
    """Declare the tasks exchange and keep endpoint queues bound, publish tasks; read no queue."""
    tasks = escape(tasks_exchange(prefix))
    queues = endpoint_queues(prefix)
    return Rights(configure=_one_of(tasks, queues), write=_one_of(tasks, queues), read=_one_of(tasks))


def endpoint_rights(prefix: str, endpoints: Iterable[str]) -> Rights:
    """Declare, bind and consume the queues of these endpoints and their exchanges, copy messages
    through those exchanges (renewals, set-aside messages); publish no task, write no other queue."""
    tasks = escape(tasks_exchange(prefix))
    dead = escape(dead_letter_name(prefix))
    own = endpoint_queues(prefix, endpoints)
    return Rights(
        configure=_one_of(tasks, dead, own),
        write=_one_of(dead, own),
        read=_one_of(tasks, dead, own),
    )


def uses_role_users(admin: RabbitmqConfig) -> bool:
    """Whether the API and the endpoints have users of their own (`rabbitmq.api_user`,
    `rabbitmq.endpoint_users`); an entry without a username does not count."""
    return bool(admin.api_user.username) or any(user.username for user in admin.endpoint_users.values())


def broker_users(admin: RabbitmqConfig, settings: MessageQueueConfig) -> list[BrokerUser]:
    """The users to create: the API's and one per endpoint user, each with only its rights; or,
    without them, the one user of `manager.message_queue` with every right on the vhost."""
    if not uses_role_users(admin):
        return [BrokerUser(settings.username, settings.password, FULL)]
    users = []
    if admin.api_user.username:
        api = admin.api_user
        _check_password("rabbitmq.api_user", api.password)
        users.append(BrokerUser(api.username, api.password, api_rights(settings.exchange)))
    for username, (password, endpoints) in _users_by_name(admin).items():
        users.append(BrokerUser(username, password, endpoint_rights(settings.exchange, endpoints), endpoints))
    return users


def endpoint_logins(admin: RabbitmqConfig) -> dict[str, tuple[str, str]]:
    """Each endpoint that has a user of its own -> that user's (username, password)."""
    return {
        endpoint: (username, password)
        for username, (password, endpoints) in _users_by_name(admin).items()
        for endpoint in endpoints
    }


def _users_by_name(admin: RabbitmqConfig) -> dict[str, tuple[str, tuple[str, ...]]]:
    """Endpoint users by username, with their endpoints: one user may serve several endpoints
    (a host that runs the managers of several), with one password."""
    found: dict[str, tuple[str, tuple[str, ...]]] = {}
    for endpoint, user in sorted(admin.endpoint_users.items()):
        if not user.username:
            continue
        key = "rabbitmq.endpoint_users.%s" % endpoint
        if not NAME_PATTERN.match(endpoint):
            raise ConfigError("%s: %r is not a valid endpoint name" % (key, endpoint))
        _check_password(key, user.password)
        if user.username == admin.api_user.username:
            raise ConfigError("%s.username: %s is the API's user; give endpoints their own" % (key, user.username))
        password, endpoints = found.get(user.username, (user.password, ()))
        if password != user.password:
            raise ConfigError("%s.password: user %s has another password for another endpoint" % (key, user.username))
        found[user.username] = (password, (*endpoints, endpoint))
    return found


def _check_password(key: str, password: str) -> None:
    if not password:
        raise ConfigError("%s.password is empty: a broker user needs one" % key)
