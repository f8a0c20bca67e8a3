"""The publisher's declarations, on a channel of their own.

Before a task is published, the tasks exchange and the queue of each of its endpoints are
declared and bound, so a task for an endpoint whose manager never ran waits for it. The broker
may refuse a declaration (with users per role, the API's user may not create a queue nobody
created yet): that closes the channel it was made on. On a channel of their own, a refusal
fails that one task's publish, never the publishes in flight beside it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Callable

from pika.exchange_type import ExchangeType

from tasker.config import MessageQueueConfig
from tasker.errors import BrokerUnavailable, QueueRefused
from tasker.messaging.topology import queue_arguments, queue_name, tasks_exchange

log = logging.getLogger(__name__)
REDECLARE_AFTER = 60.0
DIRECT = ExchangeType.direct
# Channel close codes that refuse what was asked, not say the broker is gone.
_REFUSALS = {403: "access refused", 404: "not found", 405: "resource locked", 406: "precondition failed"}


class Declarer:
    """Declares exchanges and queues on its own channel of the publisher's connection."""

    def __init__(self, settings: MessageQueueConfig, timeout: float) -> None:
        self.settings = settings
        self.timeout = timeout
        # Exchanges and queues declared, with when: a queue is declared again after
        # `redeclare_after` seconds, since the broker deletes queues nobody used for
        # `queue_expires` (and a declaration counts as a use).
        self.redeclare_after = min(REDECLARE_AFTER, settings.queue_expires / 2)
        self._declared: dict[str, float] = {}
        self._connection: Any = None
        self._channel: Any = None
        self._opening: asyncio.Future | None = None
        self._rpcs: set[asyncio.Future] = set()

    def attach(self, connection: Any) -> None:
        """Declare on `connection` from now on (a new connection: nothing is declared on it)."""
        self._connection, self._channel, self._declared = connection, None, {}
        self._fail(BrokerUnavailable("the RabbitMQ connection was replaced"))

    def forget(self) -> None:
        """Declare everything again next time (the broker returned a publish unroutable)."""
        self._declared = {}

    async def declare(self, task_type: str, endpoints: list[str]) -> None:
        """Declare the tasks exchange and the bound queues of these endpoints of a task type;
        QueueRefused if the broker refuses one, BrokerUnavailable if it does not answer."""
        exchange = tasks_exchange(self.settings.exchange)
        if exchange not in self._declared:
            await self._rpc(lambda ch, cb: ch.exchange_declare(exchange, DIRECT, durable=True, callback=cb))
            self._declared[exchange] = time.monotonic()
        for endpoint in endpoints:
            await self._declare_queue(exchange, queue_name(self.settings.exchange, task_type, endpoint))

    async def _declare_queue(self, exchange: str, queue: str) -> None:
        declared = self._declared.get(queue)
        if declared is not None and time.monotonic() - declared < self.redeclare_after:
            return
        arguments = queue_arguments(self.settings.exchange, self.settings.queue_type)
        await self._rpc(lambda ch, cb: ch.queue_declare(queue, durable=True, arguments=arguments, callback=cb))
        await self._rpc(lambda ch, cb: ch.queue_bind(queue, exchange, routing_key=queue, callback=cb))
        self._declared[queue] = time.monotonic()

    async def _rpc(self, call: Callable[[Any, Callable], None]) -> None:
        done = asyncio.get_running_loop().create_future()
        self._rpcs.add(done)
        try:
            channel = await self._open()
            call(channel, lambda _frame: done.done() or done.set_result(None))
            await asyncio.wait_for(asyncio.shield(done), self.timeout)
        except asyncio.TimeoutError as exc:
            raise BrokerUnavailable("the broker did not answer a declaration") from exc
        except BrokerUnavailable:
            raise
        except Exception as exc:  # pika raises several types when the channel just closed
            raise BrokerUnavailable("cannot declare: %s" % exc) from exc
        finally:
            self._rpcs.discard(done)

    async def _open(self) -> Any:
        if self._channel is not None and self._channel.is_open:
            return self._channel
        connection = self._connection
        if connection is None or not connection.is_open:
            raise BrokerUnavailable("no RabbitMQ connection to declare on")
        if self._opening is None or self._opening.done():
            self._opening = asyncio.get_running_loop().create_future()
            connection.channel(on_open_callback=self._on_open)
        return await asyncio.wait_for(asyncio.shield(self._opening), self.timeout)

    def _on_open(self, channel: Any) -> None:
        if channel.connection is not self._connection:
            channel.close()
            return
        channel.add_on_close_callback(self._on_close)
        self._channel = channel
        if self._opening is not None and not self._opening.done():
            self._opening.set_result(channel)

    def _on_close(self, channel: Any, reason: Any) -> None:
        if channel is not self._channel:
            return
        self._channel = None
        code = getattr(reason, "reply_code", None)
        if code in _REFUSALS:
            log.warning("RabbitMQ refused a declaration: %s", reason)
            self._fail(QueueRefused("the broker refused a declaration (%s): %s" % (_REFUSALS[code], reason)))
        else:
            self._fail(BrokerUnavailable("RabbitMQ closed the declaring channel: %s" % reason))

    def _fail(self, exc: Exception) -> None:
        rpcs, self._rpcs = self._rpcs, set()
        for future in rpcs:
            if not future.done():
                future.set_exception(exc)
