"""A broker in memory with the publisher's and the consumer's interfaces, for fast unit tests of
the manager, the dispatcher and the publisher's bookkeeping without RabbitMQ.

It keeps what the real topology promises: a message reaches only the queues of the endpoints
it names, expires there at its `expiration`, and is redelivered (`redelivered` set) when the
connection it was delivered on is lost before it was acknowledged. A consumer's copies land
where the endpoint's exchange routes them on the real broker: a renewal copy at the end of its
own queue, a rejected message in `dead_letters`. `down` makes publishing fail as an
unreachable broker does.
"""

from __future__ import annotations

import collections
import dataclasses
import threading
import time
from typing import Callable

from tasker.errors import BrokerUnavailable
from tasker.messaging.consumer import Delivery
from tasker.messaging.topology import queue_name


@dataclasses.dataclass
class StubMessage:
    """A message in a stub queue."""

    body: bytes
    expires_at: float | None = None
    renewal: bool = False
    redelivered: bool = False


class StubBroker:
    """Queues by name, shared by the stub publishers and consumers made from it."""

    def __init__(self, prefix: str = "tasker") -> None:
        self.prefix = prefix
        self.queues: dict[str, collections.deque[StubMessage]] = collections.defaultdict(collections.deque)
        self.dead_letters: list[bytes] = []
        self.published: list[tuple[list[str], bytes]] = []
        self.down = False
        self.refuse_copies = False  # answer renewal copies as the broker's nack does
        self.lock = threading.Condition()

    def publisher(self) -> StubPublisher:
        """A publisher with the interface of `tasker.messaging.publisher.Publisher`."""
        return StubPublisher(self)

    def consumer(
        self, task_type: str, endpoint: str, on_delivery: Callable[[Delivery], None], prefetch: int = 20
    ) -> StubConsumer:
        """A consumer of one endpoint's queue, like `tasker.messaging.consumer.Consumer`."""
        return StubConsumer(self, queue_name(self.prefix, task_type, endpoint), on_delivery, prefetch)

    def put(self, task_type: str, endpoint: str, body: bytes, **options) -> None:
        """Put a message straight into an endpoint's queue (a copy, a stray, a bad one)."""
        with self.lock:
            self.queues[queue_name(self.prefix, task_type, endpoint)].append(StubMessage(body, **options))
            self.lock.notify_all()

    def depth(self, task_type: str, endpoint: str) -> int:
        """Messages waiting in an endpoint's queue, not counting those delivered."""
        with self.lock:
            return len(self.queues[queue_name(self.prefix, task_type, endpoint)])


class StubPublisher:
    """Publishes into a StubBroker; fails with BrokerUnavailable while the broker is `down`."""

    confirm_timeout = 0.0  # the stub confirms at once

    def __init__(self, broker: StubBroker) -> None:
        self.broker = broker

    @property
    def is_open(self) -> bool:
        """Whether the broker is up."""
        return not self.broker.down

    async def connect(self) -> None:
        """Fail while the broker is down."""
        if self.broker.down:
            raise BrokerUnavailable("the stub broker is down")

    async def publish(self, task_type: str, endpoints: list[str], body: bytes, expiration: str | None = None) -> None:
        """Put one copy of the message in the queue of each named endpoint."""
        await self.connect()
        expires_at = time.monotonic() + int(expiration) / 1000 if expiration is not None else None
        with self.broker.lock:
            self.broker.published.append((list(endpoints), body))
            for endpoint in endpoints:
                queue = self.broker.queues[queue_name(self.broker.prefix, task_type, endpoint)]
                queue.append(StubMessage(body, expires_at))
            self.broker.lock.notify_all()

    async def remove_endpoint(self, task_type: str, endpoint: str, unless_consumed: bool = True) -> None:
        """Delete an endpoint's queue with what it holds (the stub counts no consumers)."""
        await self.connect()
        with self.broker.lock:
            self.broker.queues.pop(queue_name(self.broker.prefix, task_type, endpoint), None)

    async def close(self) -> None:
        """Nothing to close."""


class StubConsumer:
    """Delivers one queue's messages on the thread that calls `run()`, up to `prefetch` unacknowledged."""

    def __init__(self, broker: StubBroker, queue: str, on_delivery: Callable[[Delivery], None], prefetch: int) -> None:
        self.broker = broker
        self.queue = queue
        self.on_delivery = on_delivery
        self.prefetch = prefetch
        self.generation = 0
        self.acked: list[bytes] = []
        self.rejected: list[bytes] = []
        self.renewed: list[bytes] = []
        self._unacked: dict[int, tuple[int, StubMessage]] = {}
        self._next_tag = 1
        self._running = True
        self._consuming = True
        self.depth: int | None = None  # as the last `ask_depth` counted

    def run(self) -> None:
        """Deliver until `stop()`."""
        while True:
            with self.broker.lock:
                message = None
                while self._running and message is None:
                    message = self._next()
                    if message is None:
                        self.broker.lock.wait(0.05)
                if not self._running:
                    self._requeue()
                    return
                tag, self._next_tag = self._next_tag, self._next_tag + 1
                self._unacked[tag] = (self.generation, message)
                delivery = Delivery(tag, self.generation, message.body, message.redelivered, message.renewal)
            self.on_delivery(delivery)

    def _next(self) -> StubMessage | None:
        queue = self.broker.queues[self.queue]
        if not self._consuming or len(self._unacked) >= self.prefetch:
            return None
        while queue:
            message = queue.popleft()
            if message.expires_at is None or message.expires_at > time.monotonic():
                return message
        return None

    def is_current(self, delivery: Delivery) -> bool:
        """Whether the delivery came on the connection that is open now."""
        return delivery.generation == self.generation

    def ack(self, delivery: Delivery) -> None:
        """Acknowledge a delivery of the open connection."""
        self._settle(delivery, self.acked)

    def reject(self, delivery: Delivery, reason: str = "") -> None:
        """Set a delivery aside in the dead-letter list."""
        if self._settle(delivery, self.rejected):
            with self.broker.lock:
                self.broker.dead_letters.append(delivery.body)

    def _settle(self, delivery: Delivery, into: list[bytes]) -> bool:
        with self.broker.lock:
            held = self._unacked.get(delivery.tag)
            if held is None or held[0] != delivery.generation or delivery.generation != self.generation:
                return False
            del self._unacked[delivery.tag]
            into.append(delivery.body)
            self.broker.lock.notify_all()
            return True

    def renew(self, delivery: Delivery) -> None:
        """Put a renewal copy at the end of the queue, then acknowledge the original; when the
        broker refuses copies, hand the original back instead."""
        with self.broker.lock:
            if delivery.tag not in self._unacked or not self.is_current(delivery):
                return
            refused = self.broker.refuse_copies
        if refused:
            self.renewed.append(b"refused")
            self.on_delivery(delivery)
            return
        with self.broker.lock:
            self.broker.queues[self.queue].append(StubMessage(delivery.body, renewal=True))
        self._settle(delivery, self.renewed)

    def lose_connection(self) -> None:
        """Act as a lost connection: everything unacknowledged goes back to the queue, redelivered."""
        with self.broker.lock:
            self._requeue()
            self.generation += 1
            self.broker.lock.notify_all()

    def _requeue(self) -> None:
        queue = self.broker.queues[self.queue]
        for tag in sorted(self._unacked, reverse=True):
            queue.appendleft(dataclasses.replace(self._unacked[tag][1], redelivered=True))
        self._unacked.clear()

    def unacked(self) -> int:
        """How many deliveries are not settled."""
        with self.broker.lock:
            return len(self._unacked)

    def ask_depth(self) -> None:
        """Count the messages waiting in the queue into `depth`."""
        with self.broker.lock:
            self.depth = len(self.broker.queues[self.queue])

    def stop_consuming(self) -> None:
        """No more deliveries."""
        with self.broker.lock:
            self._consuming = False

    def stop(self) -> None:
        """Make `run()` return; what is unacknowledged goes back to the queue."""
        with self.broker.lock:
            self._running = False
            self.broker.lock.notify_all()
