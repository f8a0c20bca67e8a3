"""The manager of one (endpoint, task type): receive, record receipt, run, record, acknowledge.

Two threads of its own, and a child process:
- the connection thread (`run()`, the caller's) services AMQP and heartbeats; it decodes what
  arrives and leaves it in the inbox;
- the steward thread owns everything else: it records receipts (in batches, even while a
  handler runs, so the API's delivery deadline sees the truth), starts each run in the work
  horse (the handler's child process), records starts and outcomes in batches while the next
  run goes on, and hands acknowledgements back to the connection thread;
- the work horse runs one handler at a time, in its own process group.

A message passes from one thread to the other twice: on arrival, and to be acknowledged after
its outcome is stored. Runs whose message expired in the queue after they were received (a
manager killed past the deadline) are brought back from the database. A run that comes back
still `running` after `max_crashes` deliveries (its managers went away while running it) is
recorded failed instead of performed: a task that kills its manager must not do so forever.
"""

from __future__ import annotations

import logging
import os
import select
import threading
import time
from typing import Callable

from tasker.clock import utcnow
from tasker.errors import InvalidTask, StorageUnavailable
from tasker.hooks import Hooks
from tasker.lifecycle import Receipt, ReceiptDecision
from tasker.manager.heartbeat import Heartbeats
from tasker.manager.holding import Held, Holdings, Phase
from tasker.manager.inbox import Inbox
from tasker.manager.recorder import Recorder
from tasker.manager.run_queue import RunQueue
from tasker.manager.starting import Starting, job_of
from tasker.manager.upkeep import TICK, Upkeep
from tasker.manager.workhorse import Job, Outcome
from tasker.manager.workhorse_job import Horse
from tasker.messaging.consumer import Consumer, Delivery
from tasker.messaging.message import TaskMessage, decode_task
from tasker.storage import LimitStore, Progress, RegistrationStore, ResponseStore

log = logging.getLogger(__name__)
UNKNOWN = "no such task or endpoint in the database"
OUTPUT_LOGGED = 2000  # characters of a run's output the manager's log shows
PROGRESS_MESSAGE_MAX = 200  # characters of a progress message kept (the column's size)


class Manager(Starting, Upkeep):
    """Serve one endpoint's queue of one task type until told to stop."""

    def __init__(
        self,
        consumer_factory: Callable[[Callable[[Delivery], None]], Consumer],
        responses: ResponseStore,
        horse: Horse,
        task_type: str,
        endpoint: str,
        hooks: Hooks | None = None,
        retry_delay: float = 2.0,
        consumer_timeout: float = 1800.0,
        orphan_interval: float = 30.0,
        max_crashes: int | None = 3,
        heartbeat_interval: float = 10.0,
    ) -> None:
        self.task_type = task_type
        self.endpoint = endpoint
        self.responses = responses
        self.horse = horse
        self.hooks = hooks or Hooks()
        self.retry_delay = retry_delay
        self.renew_after = consumer_timeout * 0.4
        self.orphan_interval = orphan_interval
        self.max_crashes = max_crashes
        self.consumer = consumer_factory(self._on_delivery)
        self.inbox: Inbox[tuple[TaskMessage, Delivery] | None] = Inbox()
        self.holdings = Holdings()
        self._stopping = threading.Event()
        self._stopped = threading.Event()
        self._started_at = utcnow()
        # The steward's own state: nothing else reads it.
        self.recorder = Recorder(responses, endpoint, retry_delay, max_crashes)
        self.limits = LimitStore(responses.database)
        registrations = RegistrationStore(responses.database)
        self.beats = Heartbeats(registrations, self.consumer, task_type, endpoint, heartbeat_interval, ask_ahead=TICK)
        horse.on_progress = self._on_progress
        self._runnable = RunQueue()
        self._in_hand: tuple[Held, Job] | None = None
        self._cancelling = False  # the run in hand is being stopped by a cancel
        self._output_shown = 0
        self._next_tick = 0.0
        self._next_orphan_check = 0.0

    def run(self) -> int:
        """Register, consume until `shutdown()` (beating meanwhile), and return the exit status (0)."""
        if not self._until_stopped(lambda: self.beats.register(time.monotonic()), "register"):
            return 0
        self._started_at = utcnow()
        log.info("manager of %s for endpoint %s started", self.task_type, self.endpoint)
        steward = threading.Thread(target=self._steward, name="steward")
        steward.start()
        self.consumer.run()
        self._stopping.set()
        self.inbox.put(None)
        steward.join()
        self.beats.last(self.recorder)
        self._stopped.set()
        self.inbox.close()
        log.info("manager of %s for endpoint %s stopped", self.task_type, self.endpoint)
        return 0

    @property
    def stopping(self) -> bool:
        """Whether the manager was told to stop (or stopped)."""
        return self._stopping.is_set()

    def shutdown(self) -> None:
        """First call: finish the run in hand, then stop. Second call: exit at once."""
        if self._stopped.is_set():
            return
        if self._stopping.is_set():
            log.warning("second stop request: exiting now; unfinished tasks will be redelivered")
            os._exit(1)
        log.info("stopping: finishing the task in hand first")
        self._stopping.set()
        self.consumer.stop_consuming()
        self.inbox.put(None)

    # Connection thread ----------------------------------------------------------------------

    def _on_delivery(self, delivery: Delivery) -> None:
        try:
            message = decode_task(delivery.body)
        except InvalidTask as exc:
            log.error("dead-lettering message %s on %s: %s", delivery.tag, self.endpoint, exc)
            self.consumer.reject(delivery, str(exc))
            return
        if message.type != self.task_type or self.endpoint not in message.endpoints:
            reason = "a %s task for %s, not for this manager" % (message.type, ", ".join(message.endpoints))
            log.error("dead-lettering task %s on %s: %s", message.identifier, self.endpoint, reason)
            self.consumer.reject(delivery, reason)
            return
        self.inbox.put((message, delivery))

    # Steward thread --------------------------------------------------------------------------

    def _steward(self) -> None:
        try:
            while True:
                self._take_arrivals()
                if self._stopping.is_set() and self._in_hand is None and not self.recorder.ended:
                    return
                self._record_receipts()
                self._start_next()
                self._record_ended()
                self.recorder.progress(time.monotonic())
                self._tick()
                self._wait()
        except Exception:  # a fault of tasker itself: stop, so the supervisor starts a new manager
            log.exception("the manager of %s on %s failed", self.task_type, self.endpoint)
        finally:
            self.horse.close(kill=self._in_hand is not None)
            self.consumer.stop()

    def _take_arrivals(self) -> None:
        for item in self.inbox.take():
            if item is None:
                continue
            message, delivery = item
            key = (message.id, message.run)
            held = self.holdings.get(key)
            if held is not None:
                held.adopt(delivery)
            elif self.holdings.finished_lately(key):
                self.consumer.ack(delivery)
            elif not self._stopping.is_set():  # when stopping, it goes back to the queue
                held = Held(message, delivery)
                self.holdings.add(held)
                self.recorder.arrived.add(held)

    def _record_receipts(self) -> None:
        if self._stopping.is_set():
            return  # what has arrived goes back to the queue
        for held, decision, pgid in self.recorder.receipts(time.monotonic()) or []:
            self._decide(held, decision, pgid)

    def _decide(self, held: Held, decision: ReceiptDecision, pgid: int | None) -> None:
        message = held.message
        if decision.receipt is Receipt.RUN:
            log.debug("task %s received on %s (attempt %d)", message.identifier, self.endpoint, decision.attempts)
            held.attempts, held.leftover_pgid = decision.attempts, pgid
            held.move(Phase.WAITING)
            self._runnable.add(held)
            self.hooks.notify("run_received", job_of(held, self.endpoint))
            return
        if decision.receipt is Receipt.CRASHED:
            held.attempts, held.leftover_pgid = decision.attempts, pgid
            self._give_up(held, decision.errmsg or "")
            return
        if decision.receipt is Receipt.UNKNOWN:
            log.error("dead-lettering task %s on %s: %s", message.identifier, self.endpoint, UNKNOWN)
        elif decision.receipt is Receipt.STALE:
            log.warning(
                "task %s reached %s after its delivery deadline; not starting it", message.identifier, self.endpoint
            )
        else:
            log.info(
                "task %s run %d on %s is over already (%s)",
                message.identifier,
                message.run,
                self.endpoint,
                decision.receipt.value,
            )
        self.holdings.drop(held, finished=decision.receipt is not Receipt.UNKNOWN)
        for delivery in held.release():
            if decision.receipt is Receipt.UNKNOWN:
                self.consumer.reject(delivery, UNKNOWN)
            else:
                self.consumer.ack(delivery)

    def _end(self, held: Held, job: Job, outcome: Outcome) -> None:
        output = outcome.output
        if output.size:
            tail = output.text[-OUTPUT_LOGGED:]
            log.info(
                "task %s on %s wrote %d bytes of output; the last of it:\n%s",
                job.identifier,
                self.endpoint,
                output.size,
                tail.rstrip("\n"),
            )
        held.move(Phase.PERFORMED)
        self.recorder.ended.add((held, job, outcome))
        self.hooks.notify("run_finished", job, outcome)

    def _record_ended(self) -> None:
        for held, job, outcome in self.recorder.outcomes(time.monotonic(), self._idle()) or []:
            level = logging.DEBUG if outcome.errnr == 0 else logging.INFO
            log.log(level, "task %s %s on %s: errnr %s", job.identifier, outcome.state, self.endpoint, outcome.errnr)
            self.holdings.drop(held, finished=True)
            for delivery in held.release():
                self.consumer.ack(delivery)

    def _on_progress(self, percent: float, message: str | None) -> None:
        """The handler in hand reported progress (called on the steward thread, by collect())."""
        if self._in_hand is not None:
            job = self._in_hand[1]
            text = message[:PROGRESS_MESSAGE_MAX] if message is not None else None
            self.recorder.report_progress(Progress(job.task_id, job.run, percent, text))

    def _idle(self) -> bool:
        """Whether no run is in hand or about to start: nothing to wait for before writing."""
        return self._in_hand is None and not self._runnable.ready

    def _wait(self) -> None:
        now = time.monotonic()
        writes = self.recorder.wake_at(self._idle())
        timeout = max(0.0, min(self._next_tick, writes if writes is not None else self._next_tick) - now)
        readers = [self.inbox.fileno()]
        if self._in_hand is not None:
            readers.append(self.horse.fileno())
            check = self.horse.next_check()
            if check is not None:
                timeout = min(timeout, max(0.0, check - now))
        slot_check = self._runnable.wake_at()
        if slot_check is not None:
            timeout = min(timeout, max(0.0, slot_check - now))
        if self._stopping.is_set() and self._runnable.ready:
            timeout = min(timeout, TICK)
        select.select(readers, [], [], timeout)
        if self._in_hand is not None:
            outcome = self.horse.collect()
            if outcome is not None:
                held, job = self._in_hand
                self._in_hand = None
                self._end(held, job, outcome)

    def _until_stopped(self, call: Callable[[], object], what: str) -> bool:
        """Call until the database answers; False if told to stop first."""
        while True:
            try:
                call()
                return True
            except StorageUnavailable as exc:
                log.error("cannot %s on %s, retrying in %ss: %s", what, self.endpoint, self.retry_delay, exc)
            if self._stopping.wait(self.retry_delay):
                return False
