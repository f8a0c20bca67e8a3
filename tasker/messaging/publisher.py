"""Publish task messages with publisher confirms, on the API's asyncio loop.

pika's AsyncioConnection shares Tornado's loop, so publishing never blocks it. A publish
returns once the broker has confirmed the message (it is then in every bound queue, on disk
for durable queues); any fault on the way is a BrokerUnavailable.
"""

from __future__ import annotations

import asyncio
import logging

import pika
from pika.adapters.asyncio_connection import AsyncioConnection

from tasker.config import MessageQueueConfig
from tasker.errors import BrokerUnavailable
from tasker.messaging.declarer import Declarer
from tasker.messaging.parameters import connection_parameters
from tasker.messaging.removal import remove_endpoint
from tasker.messaging.topology import queue_name, tasks_exchange

log = logging.getLogger(__name__)


class Publisher:
    """One AMQP connection and confirm-mode channel, opened on first use and after any fault."""

    def __init__(self, settings: MessageQueueConfig, confirm_timeout: float = 10.0) -> None:
        self.settings = settings
        self.confirm_timeout = confirm_timeout
        self._parameters = connection_parameters(settings, attempts=1)
        self._broker = 0  # which of the configured brokers to try next
        self._tried = 0  # brokers tried while opening this time
        self._opening: asyncio.Future | None = None
        self._connection: AsyncioConnection | None = None
        self._channel = None
        self._declarer = Declarer(settings, confirm_timeout)
        self._pending: dict[int, asyncio.Future] = {}
        self._closed_waiter: asyncio.Future | None = None
        self._next_tag = 1

    @property
    def is_open(self) -> bool:
        """Whether a channel is open right now."""
        return self._channel is not None and self._channel.is_open

    async def publish(self, task_type: str, endpoints: list[str], body: bytes, expiration: str | None = None) -> None:
        """Send one task message to the queues of its endpoints and wait for the broker's confirm.

        Each endpoint's queue is declared and bound first, so a task for an endpoint whose
        manager never ran yet waits for it; the message is published once, routed to the
        first queue and copied to the others by the `CC` header. `expiration` (milliseconds)
        drops it from a queue where nobody received it in time. All of it takes
        `confirm_timeout` at most (below the outbox's claim on the task), else BrokerUnavailable.
        """
        try:
            await asyncio.wait_for(self._publish(task_type, endpoints, body, expiration), self.confirm_timeout)
        except asyncio.TimeoutError as exc:
            raise BrokerUnavailable("the broker did not confirm within %ss" % self.confirm_timeout) from exc

    async def _publish(self, task_type: str, endpoints: list[str], body: bytes, expiration: str | None) -> None:
        channel = await self.declare(task_type, endpoints)
        queues = [queue_name(self.settings.exchange, task_type, endpoint) for endpoint in endpoints]
        tag = self._next_tag
        properties = pika.BasicProperties(
            delivery_mode=pika.DeliveryMode.Persistent,
            content_type="application/json",
            expiration=expiration,
            headers={"CC": queues[1:]} if len(queues) > 1 else None,
            message_id=str(tag),  # names the publish if the broker returns it unroutable
        )
        confirmed = asyncio.get_running_loop().create_future()
        self._pending[tag] = confirmed
        self._next_tag += 1
        try:
            exchange = tasks_exchange(self.settings.exchange)
            channel.basic_publish(exchange, queues[0], body, properties, mandatory=True)
        except Exception as exc:  # pika raises several types when the channel just closed
            self._fail_pending(BrokerUnavailable("cannot publish: %s" % exc))
        await confirmed

    async def connect(self) -> None:
        """Open the connection and channel now (they open on first use otherwise)."""
        await self._open_channel()

    async def declare(self, task_type: str, endpoints: list[str]):
        """Declare the tasks exchange and the bound queues of these endpoints of a task type;
        return the publishing channel. QueueRefused if the broker refuses a declaration."""
        channel = await self._open_channel()
        await self._declarer.declare(task_type, endpoints)
        return channel

    async def remove_endpoint(self, task_type: str, endpoint: str, unless_consumed: bool = True) -> None:
        """Delete an endpoint's queue of a task type, with what it holds, and its exchange
        (deregistration); with `unless_consumed`, EndpointAlive while its queue has a consumer."""
        await self._open_channel()
        try:
            prefix, timeout = self.settings.exchange, self.confirm_timeout
            await remove_endpoint(self._connection, prefix, task_type, endpoint, timeout, unless_consumed)
        finally:
            self._declarer.forget()  # declared again before the next publish to it

    async def close(self) -> None:
        """Close the connection, failing what is still unconfirmed."""
        if self._connection is not None and not self._connection.is_closed:
            self._closed_waiter = asyncio.get_running_loop().create_future()
            self._connection.close()
            try:
                await asyncio.wait_for(self._closed_waiter, 5)
            except asyncio.TimeoutError:
                log.warning("RabbitMQ connection did not close within 5s")

    async def _open_channel(self):
        if self.is_open:
            return self._channel
        if self._opening is None or self._opening.done():
            self._opening = asyncio.get_running_loop().create_future()
            self._tried = 0
            self._connect()
        return await asyncio.shield(self._opening)

    def _connect(self) -> None:
        parameters = self._parameters[self._broker % len(self._parameters)]
        log.info("connecting to RabbitMQ at %s:%s", parameters.host, parameters.port)
        self._connection = AsyncioConnection(
            parameters,
            on_open_callback=self._on_connection_open,
            on_open_error_callback=self._on_connection_open_error,
            on_close_callback=self._on_connection_closed,
            custom_ioloop=asyncio.get_running_loop(),
        )

    # Callbacks of a connection or channel that was replaced already are ignored: only the
    # current connection may touch the publisher's state.

    def _on_connection_open(self, connection) -> None:
        if connection is self._connection:
            connection.channel(on_open_callback=self._on_channel_open)

    def _on_connection_open_error(self, connection, error) -> None:
        if connection is not self._connection:
            return
        self._broker += 1  # fail over to the next configured broker
        self._tried += 1
        if self._tried < len(self._parameters):
            log.warning("cannot connect to RabbitMQ (%s); trying the next broker", error or "refused")
            self._connect()
            return
        self._resolve_opening(exc=BrokerUnavailable("cannot connect to RabbitMQ: %s" % (error or "refused")))
        self._connection = None

    def _on_connection_closed(self, connection, reason) -> None:
        if self._closed_waiter is not None and not self._closed_waiter.done():
            self._closed_waiter.set_result(None)
        if connection is not self._connection:
            return
        closing = self._closed_waiter is not None
        log.log(logging.INFO if closing else logging.WARNING, "RabbitMQ connection closed: %s", reason)
        self._channel = None
        self._connection = None
        self._fail_pending(BrokerUnavailable("RabbitMQ connection closed: %s" % reason))
        self._resolve_opening(exc=BrokerUnavailable("RabbitMQ connection closed: %s" % reason))

    def _on_channel_open(self, channel) -> None:
        channel.add_on_close_callback(self._on_channel_closed)
        channel.add_on_return_callback(lambda ch, method, properties, body: self._on_return(ch, properties))
        channel.confirm_delivery(
            lambda frame: self._on_confirm(channel, frame), callback=lambda _frame: self._on_confirm_mode(channel)
        )

    def _on_confirm_mode(self, channel) -> None:
        if channel.connection is not self._connection:
            return
        self._channel = channel
        self._declarer.attach(channel.connection)
        self._next_tag = 1
        self._resolve_opening(channel=channel)

    def _on_channel_closed(self, channel, reason) -> None:
        if channel.connection is not self._connection:
            return
        closing = self._closed_waiter is not None
        log.log(logging.INFO if closing else logging.WARNING, "RabbitMQ channel closed: %s", reason)
        if self._channel is channel:
            self._channel = None
        self._fail_pending(BrokerUnavailable("RabbitMQ channel closed: %s" % reason))
        self._resolve_opening(exc=BrokerUnavailable("RabbitMQ channel closed: %s" % reason))
        if self._connection is not None and self._connection.is_open:
            self._connection.close()

    def _on_return(self, channel, properties) -> None:
        """The broker routed a publish to no queue (its queues were deleted meanwhile): it is not
        sent. Declarations are forgotten, so the outbox's next send declares the queues again."""
        if channel is not self._channel:
            return
        self._declarer.forget()
        future = self._pending.pop(int(properties.message_id or 0), None)
        if future is not None and not future.done():
            future.set_exception(BrokerUnavailable("the broker found no queue for the task: not sent"))

    def _on_confirm(self, channel, frame) -> None:
        if channel is not self._channel:
            return
        method = frame.method
        acked = isinstance(method, pika.spec.Basic.Ack)
        tags = [t for t in self._pending if t <= method.delivery_tag] if method.multiple else [method.delivery_tag]
        for tag in tags:
            future = self._pending.pop(tag, None)
            if future is None or future.done():
                continue
            if acked:
                future.set_result(None)
            else:
                future.set_exception(BrokerUnavailable("the broker refused the message"))
        if not acked and channel.is_open:
            # On a RabbitMQ cluster, a channel opened while a quorum queue elects its leader
            # (its node just died) may have every later publish refused; a new channel is not.
            log.warning("RabbitMQ refused a message: opening a new channel")
            channel.close()

    def _fail_pending(self, exc: Exception) -> None:
        pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(exc)

    def _resolve_opening(self, channel=None, exc: Exception | None = None) -> None:
        opening = self._opening
        if opening is None or opening.done():
            return
        if exc is not None:
            opening.set_exception(exc)
            opening.exception()  # a failure nobody awaits must not be logged as unretrieved
        else:
            opening.set_result(channel)
