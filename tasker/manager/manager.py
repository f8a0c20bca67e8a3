"""The manager of one (endpoint, task type): receive, record receipt, run, record, acknowledge.

Five threads, each with one job:
- the connection thread (`run()`, the caller's) services AMQP and heartbeats and only
  queues what arrives;
- the receipt thread records each task-response as soon as its message arrives, even while
  a handler runs, so the API's delivery deadline sees the truth;
- the handler thread runs one handler module call at a time;
- the result thread records what the handlers answered and only then hands each
  acknowledgement back to the connection thread;
- the lease thread renews held deliveries before the broker's consumer timeout.
Receipts and results are recorded in batches when many come at once: one transaction each.
"""

from __future__ import annotations

import collections
import logging
import os
import queue
import threading
import time
from typing import Callable, TypeVar

from tasker.errors import InvalidTask, StorageError, StorageUnavailable
from tasker.manager.handler_module import HandlerModule
from tasker.manager.lease import Leases, Ticket
from tasker.messaging.consumer import Consumer, Delivery
from tasker.messaging.message import decode_task
from tasker.status import ErrNr
from tasker.storage import Receipt, ResponseStore, Result

log = logging.getLogger(__name__)
T = TypeVar("T")
_STOP = object()
_GAVE_UP = object()
REMEMBERED_TASKS = 10_000
BATCH = 200


class Manager:
    """Serve one endpoint's queue of one task type until told to stop."""

    def __init__(
        self,
        consumer_factory: Callable[[Callable[[Delivery], None]], Consumer],
        responses: ResponseStore,
        handler: HandlerModule,
        endpoint: str,
        retry_delay: float = 2.0,
        consumer_timeout: float = 1800.0,
    ) -> None:
        self.endpoint = endpoint
        self.task_type = handler.task_type
        self.responses = responses
        self.handler = handler
        self.retry_delay = retry_delay
        self.consumer = consumer_factory(self._on_delivery)
        self.leases = Leases(self.consumer, renew_after=consumer_timeout * 0.4)
        self._received: queue.Queue = queue.Queue()
        self._work: queue.Queue = queue.Queue()
        self._results: queue.Queue = queue.Queue()
        self._stopping = threading.Event()
        # Tasks this process finished and recorded lately: a copy of one is acknowledged, not rerun.
        self._finished: collections.OrderedDict[int, bool] = collections.OrderedDict()
        # Tasks performed whose result is not stored yet, with copies that came meanwhile: those
        # are acknowledged only once the result is stored (an ack before would lose the task).
        self._unrecorded: dict[int, list[Ticket]] = {}
        self._unrecorded_lock = threading.Lock()

    def run(self) -> int:
        """Register, consume until `shutdown()`, and return the exit status (0)."""
        registered = self._retry(lambda: self.responses.register(self.task_type, self.endpoint), "register")
        if registered is _GAVE_UP:
            return 0
        log.info("manager of %s for endpoint %s started", self.task_type, self.endpoint)
        threads = [
            threading.Thread(target=self._receive_loop, name="receipt", daemon=True),
            threading.Thread(target=self._work_loop, name="handler", daemon=True),
            threading.Thread(target=self._result_loop, name="result", daemon=True),
            threading.Thread(target=self.leases.keep, args=(self._stopping,), name="lease", daemon=True),
        ]
        for thread in threads:
            thread.start()
        self.consumer.run()
        self._stopping.set()
        self._received.put(_STOP)
        for thread in threads:
            thread.join()
        log.info("manager of %s for endpoint %s stopped", self.task_type, self.endpoint)
        return 0

    def shutdown(self) -> None:
        """First call: finish the task in hand, then stop. Second call: exit at once."""
        if self._stopping.is_set():
            log.warning("second stop request: exiting now; unfinished tasks will be redelivered")
            os._exit(1)
        log.info("stopping: finishing the task in hand first")
        self._stopping.set()
        self.consumer.stop_consuming()
        self._received.put(_STOP)

    # Connection thread ----------------------------------------------------------------------

    def _on_delivery(self, delivery: Delivery) -> None:
        try:
            message = decode_task(delivery.body)
        except InvalidTask as exc:
            log.error("dead-lettering message %s on %s: %s", delivery.tag, self.endpoint, exc)
            self.consumer.reject(delivery)
            return
        if message.type != self.task_type:
            log.error(
                "dead-lettering task %s on %s: type %r is not this manager's %r",
                message.identifier,
                self.endpoint,
                message.type,
                self.task_type,
            )
            self.consumer.reject(delivery)
        elif delivery.renewal and self.leases.adopt(message.id, delivery):
            return
        elif self.endpoint not in message.endpoints:
            log.debug("task %s is not for endpoint %s; ignoring it", message.identifier, self.endpoint)
            self.consumer.ack(delivery)
        else:
            self._received.put(self.leases.hold(delivery, message))

    # Receipt thread --------------------------------------------------------------------------

    def _receive_loop(self) -> None:
        while True:
            batch = _take_batch(self._received)
            # Renewed tickets come back as copies; when stopping, all is left for redelivery.
            tickets = [item for item in batch if item is not _STOP and item.delivery is not None]
            if tickets and not self._stopping.is_set():
                try:
                    self._receive(tickets)
                except Exception:  # left unacknowledged; the loop must go on
                    log.exception("cannot record receipt of %d tasks on %s", len(tickets), self.endpoint)
            if _STOP in batch:
                self._work.put(_STOP)
                return

    def _receive(self, tickets: list[Ticket]) -> None:
        task_ids = [ticket.message.id for ticket in tickets]
        # A renewal copy did not run (unless it comes back redelivered: its holder died).
        again = [not ticket.delivery.renewal or ticket.delivery.redelivered for ticket in tickets]
        decided = self._retry(lambda: self.responses.record_receipts(task_ids, self.endpoint, again), "record receipt")
        if decided is _GAVE_UP:
            return
        for ticket, (receipt, attempts) in zip(tickets, decided, strict=True):
            self._decide(ticket, receipt, attempts)

    def _decide(self, ticket: Ticket, receipt: Receipt, attempts: int) -> None:
        identifier = ticket.message.identifier
        if receipt is Receipt.RUN:
            log.info("task %s received on %s (attempt %d)", identifier, self.endpoint, attempts)
            self._work.put((ticket, attempts))
            return
        if receipt is Receipt.UNKNOWN:
            log.error("dead-lettering task %s on %s: no such task in the database", identifier, self.endpoint)
        elif receipt is Receipt.STALE:
            log.warning("task %s reached %s after its delivery deadline; not starting it", identifier, self.endpoint)
        else:
            log.info("task %s was finished on %s already; acknowledging it", identifier, self.endpoint)
        delivery = self.leases.settle(ticket)
        if delivery is not None:
            (self.consumer.reject if receipt is Receipt.UNKNOWN else self.consumer.ack)(delivery)

    # Handler thread --------------------------------------------------------------------------

    def _work_loop(self) -> None:
        try:
            while True:
                item = self._work.get()
                if item is _STOP:
                    return
                ticket, attempts = item
                if self._stopping.is_set() or ticket.delivery is None or not self.consumer.is_current(ticket.delivery):
                    continue  # not started: the broker redelivers it (or its renewal copy comes back)
                if self._performed_already(ticket):
                    continue
                self._perform(ticket, attempts)
        finally:
            self._results.put(_STOP)

    def _performed_already(self, ticket: Ticket) -> bool:
        """A copy of a task this process performed: acknowledge it now, or with the result."""
        with self._unrecorded_lock:
            if ticket.message.id in self._unrecorded:
                self._unrecorded[ticket.message.id].append(ticket)
                return True
        if ticket.message.id in self._finished:
            self._acknowledge(ticket)
            return True
        return False

    def _perform(self, ticket: Ticket, attempts: int) -> None:
        message = ticket.message
        if not self.leases.start(ticket):
            return  # renewed just now: its copy comes back and runs then
        log.info("task %s starting on %s", message.identifier, self.endpoint)
        response = self.handler.run(message, self.endpoint, attempts)
        with self._unrecorded_lock:
            self._unrecorded[message.id] = []
        self._results.put((ticket, Result(message.id, response.errnr, response.errmsg, response.payload)))

    # Result thread ---------------------------------------------------------------------------

    def _result_loop(self) -> None:
        try:
            while True:
                batch = _take_batch(self._results)
                done = [item for item in batch if item is not _STOP]
                if done:
                    self._record_batch(done)
                if len(done) < len(batch):
                    return
        finally:
            self.consumer.stop()

    def _record_batch(self, done: list[tuple[Ticket, Result]]) -> None:
        try:
            statuses = self._record([result for _, result in done])
        except StorageError as exc:  # one of them cannot be stored: find which, one by one
            log.error("the database refused a batch of %d results on %s: %s", len(done), self.endpoint, exc)
            statuses = [self._record_alone(ticket, result) for ticket, result in done]
        except Exception:  # left unacknowledged, to be redelivered and run again; the loop goes on
            log.exception("cannot record %d results on %s", len(done), self.endpoint)
            statuses = [None] * len(done)
        for (ticket, result), status in zip(done, statuses, strict=True):
            if status is None:
                with self._unrecorded_lock:
                    self._unrecorded.pop(result.task_id, None)
                continue
            log.info(
                "task %s finished on %s: errnr %s, task now %s",
                ticket.message.identifier,
                self.endpoint,
                result.errnr,
                status,
            )
            with self._unrecorded_lock:
                copies = self._unrecorded.pop(result.task_id, [])
                self._finished[result.task_id] = True
                while len(self._finished) > REMEMBERED_TASKS:
                    self._finished.popitem(last=False)
            for held in [ticket, *copies]:
                self._acknowledge(held)

    def _record_alone(self, ticket: Ticket, result: Result) -> str | None:
        try:
            return self._record([result])[0]
        except StorageError as exc:
            log.error(
                "task %s on %s: the database refused its result: %s", ticket.message.identifier, self.endpoint, exc
            )
            failed = Result(result.task_id, ErrNr.GENERAL_ERROR, "cannot store the handler's result: %s" % exc, None)
            try:
                return self._record([failed])[0]
            except StorageError:
                log.exception("task %s on %s: cannot store even an error", ticket.message.identifier, self.endpoint)
                return None

    def _acknowledge(self, ticket: Ticket) -> None:
        delivery = self.leases.settle(ticket)
        if delivery is not None:  # None: a renewal copy is on its way, and is acknowledged on arrival
            self.consumer.ack(delivery)

    def _record(self, results: list[Result]) -> list[str]:
        """Record results, waiting out database outages: they must be stored before the acks."""
        return self._retry(
            lambda: self.responses.record_results(results, self.endpoint), "record result", give_up_on_stop=False
        )

    def _retry(self, call: Callable[[], T], what: str, give_up_on_stop: bool = True) -> T | object:
        """Call until the database answers; _GAVE_UP if stopping first (when `give_up_on_stop`)."""
        while True:
            try:
                return call()
            except StorageUnavailable as exc:
                log.error("cannot %s on %s, retrying in %ss: %s", what, self.endpoint, self.retry_delay, exc)
            if not give_up_on_stop:
                time.sleep(self.retry_delay)
            elif self._stopping.wait(self.retry_delay):
                return _GAVE_UP


def _take_batch(source: queue.Queue) -> list:
    """Wait for one item, then take whatever else is waiting, up to BATCH."""
    batch = [source.get()]
    while len(batch) < BATCH:
        try:
            batch.append(source.get_nowait())
        except queue.Empty:
            break
    return batch
