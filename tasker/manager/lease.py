"""The deliveries a manager holds, renewed before the broker's consumer timeout can cancel them.

RabbitMQ closes a channel that holds a delivery unacknowledged longer than its
`consumer_timeout` (30 minutes by default) and redelivers everything on it. A handler may run
for hours while other tasks wait behind it, and a message is acknowledged only once its
result is stored, so every held delivery is renewed in time: a copy of the message goes back
to the queue (`Consumer.renew`), and the original is acknowledged once the broker has the copy.
A copy of the running task comes back to this manager and takes the original's place; a copy
of a waiting task simply arrives again, and its receipt does not count as another attempt.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time

from tasker.messaging.consumer import Consumer, Delivery
from tasker.messaging.message import TaskMessage

log = logging.getLogger(__name__)


@dataclasses.dataclass(eq=False)
class Ticket:
    """A task this manager holds, from arrival until it is settled. `delivery` is None once it
    was renewed: its copy is on its way back and nothing is left to acknowledge."""

    delivery: Delivery | None
    message: TaskMessage
    since: float = dataclasses.field(default_factory=time.monotonic)


class Leases:
    """Every ticket held unacknowledged, and which of them the handler thread is running."""

    def __init__(self, consumer: Consumer, renew_after: float) -> None:
        self.consumer = consumer
        self.renew_after = renew_after
        self._lock = threading.Lock()
        self._held: set[Ticket] = set()
        self._running: Ticket | None = None

    def hold(self, delivery: Delivery, message: TaskMessage) -> Ticket:
        """A task delivery arrived and is kept for receipt and work."""
        ticket = Ticket(delivery, message)
        with self._lock:
            self._held.add(ticket)
        return ticket

    def start(self, ticket: Ticket) -> bool:
        """The handler thread starts running this ticket's task; False if it was renewed just
        before (its copy comes back, and runs then)."""
        with self._lock:
            if ticket.delivery is None:
                return False
            self._running = ticket
            return True

    def settle(self, ticket: Ticket) -> Delivery | None:
        """Let go of a ticket; return the delivery to acknowledge or reject (None if renewed)."""
        with self._lock:
            self._held.discard(ticket)
            if self._running is ticket:
                self._running = None
            delivery, ticket.delivery = ticket.delivery, None
            return delivery

    def adopt(self, task_id: int, delivery: Delivery) -> bool:
        """A renewal copy arrived: it replaces the running task's delivery if it is that task's."""
        with self._lock:
            running = self._running
            if running is None or running.message.id != task_id or running.delivery is not None:
                return False
            running.delivery, running.since = delivery, time.monotonic()
            return True

    def renew_due(self) -> None:
        """Renew every held delivery older than `renew_after` seconds."""
        now = time.monotonic()
        with self._lock:
            due = [t for t in self._held if t.delivery is not None and now - t.since >= self.renew_after]
            renewals = []
            for ticket in due:
                renewals.append((ticket.message.identifier, ticket.delivery))
                ticket.delivery = None
                if ticket is not self._running:
                    self._held.discard(ticket)  # its copy comes back as a new arrival
        for identifier, delivery in renewals:
            log.info("renewing the delivery of task %s before the consumer timeout", identifier)
            self.consumer.renew(delivery)

    def keep(self, stopping: threading.Event) -> None:
        """Renew what is due every second, until `stopping` is set (the lease thread's loop)."""
        while not stopping.wait(1.0):
            self.renew_due()
