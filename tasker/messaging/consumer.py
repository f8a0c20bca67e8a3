"""Consume one endpoint's queue on a pika SelectConnection, reconnecting with a capped backoff.

The connection lives in the thread that calls `run()`; other threads (the manager's receipt
and handler threads) reach it only through `add_callback_threadsafe`, so heartbeats keep
flowing however long a task handler runs.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from typing import Callable

import pika
from pika.adapters.select_connection import SelectConnection
from pika.exchange_type import ExchangeType

from tasker.config import MessageQueueConfig
from tasker.messaging.parameters import connection_parameters
from tasker.messaging.topology import (
    REASON_HEADER,
    dead_letter_arguments,
    dead_letter_name,
    endpoint_exchange,
    queue_arguments,
    queue_name,
    tasks_exchange,
)

log = logging.getLogger(__name__)
MAX_BACKOFF = 30.0


RENEWAL_HEADER = "x-tasker-renewal"
RENEWAL = pika.BasicProperties(
    delivery_mode=pika.DeliveryMode.Persistent, content_type="application/json", headers={RENEWAL_HEADER: 1}
)


@dataclasses.dataclass(frozen=True)
class Delivery:
    """One message as it reached this consumer; `generation` names the connection it came on.

    `renewal` marks a copy this consumer put back itself to renew a running task (`renew()`).
    """

    tag: int
    generation: int
    body: bytes
    redelivered: bool
    renewal: bool = False


class Consumer:
    """Declare, consume and acknowledge one (task type, endpoint) queue."""

    def __init__(
        self,
        settings: MessageQueueConfig,
        task_type: str,
        endpoint: str,
        on_delivery: Callable[[Delivery], None],
    ) -> None:
        self.settings = settings
        self.exchange = tasks_exchange(settings.exchange)
        self.queue = queue_name(settings.exchange, task_type, endpoint)
        # Renewal and set-aside copies go through an exchange of this endpoint's own, so the
        # endpoint's broker user needs no right to publish into other queues.
        self.copies = endpoint_exchange(settings.exchange, task_type, endpoint)
        self.dead_letter = dead_letter_name(settings.exchange)
        self._on_delivery = on_delivery
        self._parameters = connection_parameters(settings)
        self._broker = 0
        # Publish tag of a copy (a renewal, a set-aside message) -> the delivery to ack on its confirm.
        self._copying: dict[int, tuple[Delivery, bool]] = {}
        self._publish_tag = 1
        self._connection: SelectConnection | None = None
        self._channel = None
        self._consumer_tag: str | None = None
        self._generation = 0
        self._running = True
        self._consuming_wanted = True
        self._backoff = 0.0
        self._wake = threading.Event()
        # Messages ready in the queue as the broker last counted them (`ask_depth`); None
        # while not known (not asked yet, or the connection it was counted on is lost).
        self.depth: int | None = None

    # The loop ------------------------------------------------------------------------------

    def run(self) -> None:
        """Connect and consume until `stop()`; on a connection fault, wait and reconnect."""
        while self._running:
            self._connection = SelectConnection(
                self._parameters[self._broker % len(self._parameters)],
                on_open_callback=self._on_connection_open,
                on_open_error_callback=self._on_connection_open_error,
                on_close_callback=self._on_connection_closed,
            )
            self._connection.ioloop.start()
            if self._running:
                self._backoff = min(MAX_BACKOFF, max(1.0, self._backoff * 2))
                log.info("reconnecting to RabbitMQ in %.0fs", self._backoff)
                self._sleep(self._backoff)

    def _sleep(self, seconds: float) -> None:
        self._wake.wait(seconds)

    # Thread-safe controls --------------------------------------------------------------------

    def is_current(self, delivery: Delivery) -> bool:
        """Whether the delivery came on the connection that is open now (acks can still land)."""
        return delivery.generation == self._generation

    def ack(self, delivery: Delivery) -> None:
        """Acknowledge a delivery from any thread; a delivery of a lost connection is left alone."""
        self._call(lambda: self._settle(delivery, lambda ch: ch.basic_ack(delivery.tag)))

    def reject(self, delivery: Delivery, reason: str = "") -> None:
        """Set a delivery aside from any thread: a copy goes to the dead-letter queue with the
        reason in a header, and the original is acknowledged once the broker confirmed it."""
        self._call(lambda: self._set_aside(delivery, reason))

    def renew(self, delivery: Delivery) -> None:
        """Put a copy of a long-running delivery back in the queue, then acknowledge the original.

        Thread-safe. The broker's consumer timeout counts from delivery, so renewing before it
        keeps a task that runs for hours from being cancelled and redelivered. The copy is
        marked as a renewal; the original is acknowledged only once the broker confirmed it.
        """
        self._call(lambda: self._renew(delivery))

    def ask_depth(self) -> None:
        """Have the broker count the messages ready in the queue (from any thread): a passive
        declare on the connection's thread, whose answer lands in `depth` moments later."""
        self._call(self._ask_depth)

    def stop_consuming(self) -> None:
        """Ask the broker for no more deliveries; unacknowledged ones return to the queue on close."""
        self._consuming_wanted = False
        self._call(self._cancel)

    def stop(self) -> None:
        """Close the connection and make `run()` return."""
        self._running = False
        self._wake.set()
        self._call(self._close)

    def _call(self, callback: Callable[[], None]) -> None:
        connection = self._connection
        if connection is None:
            return
        try:
            connection.ioloop.add_callback_threadsafe(callback)
        except Exception:  # the ioloop is already closed: nothing left to do on it
            log.debug("connection loop closed; dropping a callback")

    # Callbacks on the connection thread ------------------------------------------------------

    def _channel_of(self, delivery: Delivery):
        """The channel a delivery came on, if it is still open (else the broker requeued it)."""
        if delivery.generation != self._generation or self._channel is None or not self._channel.is_open:
            return None
        return self._channel

    def _settle(self, delivery: Delivery, settle: Callable) -> None:
        channel = self._channel_of(delivery)
        if channel is None:
            log.info("not settling delivery %s of a closed channel; it will be redelivered", delivery.tag)
            return
        settle(channel)

    def _ask_depth(self) -> None:
        if self._channel is not None and self._channel.is_open and self._consumer_tag:
            # A queue deleted under the consumer fails this and closes the channel: the
            # connection is opened again and the queue declared again, as at the start.
            self._channel.queue_declare(self.queue, passive=True, callback=self._on_depth)

    def _on_depth(self, frame) -> None:
        self.depth = frame.method.message_count

    def _cancel(self) -> None:
        if self._channel is not None and self._channel.is_open and self._consumer_tag:
            self._channel.basic_cancel(self._consumer_tag)
            self._consumer_tag = None

    def _close(self) -> None:
        connection = self._connection
        if connection is None:
            return
        if connection.is_open:
            connection.close()
        elif connection.is_closed:
            connection.ioloop.stop()

    def _on_connection_open(self, connection) -> None:
        if not self._running:  # stop() came while connecting
            connection.close()
            return
        log.info("connected to RabbitMQ at %s:%s", connection.params.host, connection.params.port)
        connection.channel(on_open_callback=self._on_channel_open)

    def _on_connection_open_error(self, connection, error) -> None:
        parameters = connection.params
        log.error("cannot connect to RabbitMQ at %s:%s: %s", parameters.host, parameters.port, error)
        self._broker += 1  # the next attempt goes to the next configured broker
        connection.ioloop.stop()

    def _on_connection_closed(self, connection, reason) -> None:
        self._channel, self.depth = None, None
        self._generation += 1
        if self._running:
            log.warning("RabbitMQ connection lost: %s", reason)
        connection.ioloop.stop()

    def _on_channel_open(self, channel) -> None:
        self._channel = channel
        self._copying, self._publish_tag = {}, 1
        channel.add_on_close_callback(self._on_channel_closed)
        steps = [
            *self._declarations(channel),
            lambda cb: channel.basic_qos(prefetch_count=self.settings.prefetch, callback=cb),
            lambda cb: channel.confirm_delivery(self._on_confirm, callback=cb),
        ]
        self._chain(steps, self._start_consuming)

    def _declarations(self, channel) -> list:
        """What this consumer declares, all idempotent (a manager of an older version may have
        made part of it): the shared exchanges, the dead-letter queue, its own queue, and the
        exchange its copies go through, bound to its queue and to the dead-letter queue."""
        dead = self.dead_letter
        return [
            lambda cb: channel.exchange_declare(dead, ExchangeType.fanout, durable=True, callback=cb),
            lambda cb: channel.queue_declare(
                dead, durable=True, arguments=dead_letter_arguments(self.settings.queue_type), callback=cb
            ),
            # Expired messages reach the queues' dead-letter exchange: they are dropped there.
            lambda cb: channel.queue_unbind(dead, dead, callback=cb),
            lambda cb: channel.exchange_declare(self.exchange, ExchangeType.direct, durable=True, callback=cb),
            lambda cb: channel.queue_declare(
                self.queue,
                durable=True,
                arguments=queue_arguments(self.settings.exchange, self.settings.queue_type),
                callback=cb,
            ),
            lambda cb: channel.queue_bind(self.queue, self.exchange, routing_key=self.queue, callback=cb),
            lambda cb: channel.exchange_declare(self.copies, ExchangeType.direct, durable=True, callback=cb),
            lambda cb: channel.queue_bind(self.queue, self.copies, routing_key=self.queue, callback=cb),
            lambda cb: channel.queue_bind(dead, self.copies, routing_key=dead, callback=cb),
        ]

    def _chain(self, steps: list, then: Callable[[], None]) -> None:
        if not steps:
            then()
            return
        steps[0](lambda _frame: self._chain(steps[1:], then))

    def _start_consuming(self) -> None:
        if not self._consuming_wanted:
            return
        self._consumer_tag = self._channel.basic_consume(self.queue, self._on_message)
        self._backoff = 0.0
        log.info("consuming %s", self.queue)

    def _on_channel_closed(self, channel, reason) -> None:
        log.warning("RabbitMQ channel closed: %s", reason)
        self._channel = None
        if self._connection is not None and self._connection.is_open:
            self._connection.close()

    def _on_message(self, channel, method, properties, body: bytes) -> None:
        renewal = bool((properties.headers or {}).get(RENEWAL_HEADER))
        delivery = Delivery(method.delivery_tag, self._generation, body, method.redelivered, renewal)
        self._on_delivery(delivery)

    def _renew(self, delivery: Delivery) -> None:
        self._copy_then_ack(delivery, self.queue, RENEWAL, renewal=True)

    def _set_aside(self, delivery: Delivery, reason: str) -> None:
        headers = {REASON_HEADER: reason[:1000], "x-tasker-queue": self.queue}
        properties = pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent, headers=headers)
        self._copy_then_ack(delivery, self.dead_letter, properties, renewal=False)

    def _copy_then_ack(self, delivery: Delivery, queue: str, properties: pika.BasicProperties, renewal: bool) -> None:
        """Publish a copy of a delivery to `queue` through the endpoint's exchange; acknowledge
        the original once it is confirmed."""
        channel = self._channel_of(delivery)
        if channel is None:
            return  # that delivery went back to the queue with its channel
        channel.basic_publish(self.copies, queue, delivery.body, properties)
        self._copying[self._publish_tag] = (delivery, renewal)
        self._publish_tag += 1

    def _on_confirm(self, frame) -> None:
        method = frame.method
        tags = [t for t in self._copying if t <= method.delivery_tag] if method.multiple else [method.delivery_tag]
        for tag in tags:
            copied = self._copying.pop(tag, None)
            if copied is None:
                continue
            delivery, renewal = copied
            if isinstance(method, pika.spec.Basic.Ack):
                self._settle(delivery, lambda ch, d=delivery: ch.basic_ack(d.tag))
            elif renewal:  # no copy: the original is handed back, and its holder keeps it
                log.warning("the broker refused the renewal copy of delivery %s; keeping the original", delivery.tag)
                self._on_delivery(delivery)
            else:
                log.warning("the broker refused the copy of delivery %s; keeping the original", delivery.tag)
