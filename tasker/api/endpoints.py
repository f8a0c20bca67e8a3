"""`GET /endpoints` and `DELETE /endpoints/<type>/<endpoint>`: the registered endpoints with what
their managers' heartbeats say, and deregistering one whose manager is gone.

An endpoint is `alive` while its manager was seen within 3 of its heartbeat intervals
(`tasker.lifecycle.liveness`); `alive` is null for a registration without an interval, written
by a manager older than heartbeats, whose silence says nothing. A DELETE is refused (`409`)
while the endpoint is alive, and while its queue has a consumer whatever the heartbeats say;
otherwise it deletes the queue (with what it holds) and the endpoint's exchange, then the
registration: tasks without `endpoints` no longer go to it.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any, Awaitable, Callable

from tasker.api.base import JsonHandler
from tasker.clock import format_time, utcnow
from tasker.config import NAME_PATTERN
from tasker.errors import EndpointAlive, EndpointNotFound
from tasker.lifecycle import DEAD_AFTER
from tasker.messaging.publisher import Publisher
from tasker.storage import Registration, RegistrationStore

log = logging.getLogger(__name__)
Storage = Callable[..., Awaitable[Any]]  # runs a blocking call off the IOLoop (`Dispatcher.storage`)


class Fleet:
    """The API's way to the registrations and to removing an endpoint from the broker."""

    def __init__(self, registrations: RegistrationStore, publisher: Publisher, storage: Storage) -> None:
        self.registrations = registrations
        self.publisher = publisher
        self.storage = storage

    async def listing(self, task_type: str | None) -> list[dict[str, Any]]:
        """Every registered endpoint (of one task type) as `GET /endpoints` shows it."""
        found = await self.storage(self.registrations.listing, task_type)
        now = utcnow()
        return [endpoint_view(registration, now) for registration in found]

    async def deregister(self, task_type: str, endpoint: str) -> None:
        """Forget a registered endpoint whose manager is gone, with its queue and exchange;
        EndpointNotFound if it is not registered, EndpointAlive while its manager lives."""
        found = await self.storage(self.registrations.find, task_type, endpoint)
        if found is None:
            raise EndpointNotFound("no endpoint %r is registered for task type %s" % (endpoint, task_type))
        if found.alive(utcnow()):
            raise EndpointAlive(
                "endpoint %s of %s is alive: its manager was last seen at %s and beats every %ss; stop it first "
                "(it counts as gone %d heartbeats after its last)"
                % (endpoint, task_type, format_time(found.last_seen_time), found.heartbeat_interval, DEAD_AFTER)
            )
        # The broker first: should it fail, the registration is still there to DELETE again.
        await self.publisher.remove_endpoint(task_type, endpoint)
        await self.storage(self.registrations.deregister, task_type, endpoint)
        log.info("endpoint %s of %s deregistered; its queue and exchange are deleted", endpoint, task_type)


def endpoint_view(registration: Registration, now: dt.datetime) -> dict[str, Any]:
    """One registered endpoint as the API shows it, alive or not at `now`."""
    return {
        "type": registration.type,
        "endpoint": registration.endpoint,
        "registered_at": format_time(registration.registered_time),
        "last_seen": format_time(registration.last_seen_time),
        "alive": registration.alive(now),
        "heartbeat_interval": registration.heartbeat_interval,
        "host": registration.host,
        "pid": registration.pid,
        "version": registration.version,
        "running": registration.running,
        "queued": registration.queued,
    }


class EndpointListHandler(JsonHandler):
    """`GET /endpoints[?type=T]`: `{"endpoints": [...]}`, by type and endpoint."""

    def initialize(self, fleet: Fleet) -> None:
        super().initialize()
        self.fleet = fleet

    async def get(self) -> None:
        task_type = self.get_query_argument("type", None, strip=False)
        if task_type is not None:
            _check_type(task_type, self.settings["task_types"])
        self.answer(200, {"endpoints": await self.fleet.listing(task_type)})


class EndpointItemHandler(JsonHandler):
    """`DELETE /endpoints/<type>/<endpoint>`: deregister an endpoint whose manager is gone (`204`)."""

    def initialize(self, fleet: Fleet) -> None:
        super().initialize()
        self.fleet = fleet

    def allowed_methods(self) -> list[str]:
        return ["DELETE"]

    async def delete(self, task_type: str, endpoint: str) -> None:
        _check_type(task_type, self.settings["task_types"])
        if not NAME_PATTERN.match(endpoint):
            raise EndpointNotFound("no endpoint %r is registered for task type %s" % (endpoint[:60], task_type))
        await self.fleet.deregister(task_type, endpoint)
        self.set_status(204)
        self.finish()


def _check_type(task_type: str, configured: tuple[str, ...]) -> None:
    if task_type not in configured:
        raise EndpointNotFound("no task type %r (task types: %s)" % (task_type[:60], ", ".join(configured)))
