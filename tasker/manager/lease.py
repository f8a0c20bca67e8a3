"""The running task's delivery, renewed before the broker's consumer timeout can cancel it.

RabbitMQ closes a channel whose delivery stays unacknowledged longer than its
`consumer_timeout` (30 minutes by default) and redelivers the message. A handler may run
for hours, and its message is acknowledged only once the result is stored, so the lease
hands a copy of the message back to the queue (`Consumer.renew`) before the timeout; the
copy comes back to this manager and replaces the original, which is then acknowledged.
"""

from __future__ import annotations

import logging
import threading
import time

from tasker.messaging.consumer import Consumer, Delivery

log = logging.getLogger(__name__)


class Lease:
    """What the handler thread holds: the task running now and the delivery to acknowledge."""

    def __init__(self, consumer: Consumer, renew_after: float) -> None:
        self.consumer = consumer
        self.renew_after = renew_after
        self._lock = threading.Lock()
        self._task_id: int | None = None
        self._delivery: Delivery | None = None
        self._since = 0.0

    def start(self, task_id: int, delivery: Delivery) -> None:
        """The handler thread starts running `task_id`, delivered as `delivery`."""
        with self._lock:
            self._task_id, self._delivery, self._since = task_id, delivery, time.monotonic()

    def finish(self) -> Delivery | None:
        """The task is recorded: return the delivery to acknowledge (None if a copy is in flight)."""
        with self._lock:
            delivery, self._task_id, self._delivery = self._delivery, None, None
            return delivery

    def adopt(self, task_id: int, delivery: Delivery) -> bool:
        """A renewal copy arrived: take it over if it is the running task's; else it is a task."""
        with self._lock:
            if task_id != self._task_id or self._delivery is not None:
                return False
            self._delivery, self._since = delivery, time.monotonic()
            return True

    def renew_due(self) -> None:
        """Renew the running task's delivery if it has been held for `renew_after` seconds."""
        with self._lock:
            held = self._delivery
            if held is None or time.monotonic() - self._since < self.renew_after:
                return
            self._delivery = None  # acknowledged once the copy is confirmed
        log.info("renewing the delivery of running task %s before the consumer timeout", self._task_id)
        self.consumer.renew(held)

    def keep(self, stopped: threading.Event) -> None:
        """Check every second until `stopped` is set (the lease thread's loop)."""
        while not stopped.wait(1.0):
            self.renew_due()
