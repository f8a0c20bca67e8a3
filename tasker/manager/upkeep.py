"""The steward's once-a-tick work: renew held deliveries, act on cancels, bring back runs whose
message expired, write the heartbeat. A part of `Manager` (its base class), kept apart to keep
each file short."""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time

from tasker.manager.heartbeat import Heartbeats
from tasker.manager.holding import Held, Holdings, Phase
from tasker.manager.recorder import Recorder
from tasker.manager.run_queue import RunQueue
from tasker.manager.workhorse_job import Horse, Job
from tasker.messaging.consumer import Consumer
from tasker.messaging.message import TaskMessage
from tasker.storage import Orphan, OutputSoFar, ResponseStore

log = logging.getLogger("tasker.manager.manager")
TICK = 1.0  # seconds between looks at leases, cancels and orphans when nothing else happens


class Upkeep:
    """What the steward of a `Manager` does once a tick; it uses the manager's own state."""

    # The manager's state this part reads and changes (set up by Manager.__init__); it also
    # calls the manager's `_give_up`.
    task_type: str
    endpoint: str
    responses: ResponseStore
    consumer: Consumer
    horse: Horse
    holdings: Holdings
    recorder: Recorder
    beats: Heartbeats
    renew_after: float
    orphan_interval: float
    max_crashes: int | None
    _runnable: RunQueue
    _in_hand: tuple[Held, Job] | None
    _cancelling: bool
    _output_shown: int  # bytes of the run in hand's output shown so far
    _stopping: threading.Event
    _started_at: dt.datetime
    _next_tick: float
    _next_orphan_check: float

    def _tick(self) -> None:
        now = time.monotonic()
        if now < self._next_tick:
            return
        self._next_tick = now + TICK
        for held in self.holdings.all():
            delivery = held.renew_if_due(self.renew_after, now)
            if delivery is not None:
                log.info("renewing the delivery of task %s before the consumer timeout", held.message.identifier)
                self.consumer.renew(delivery)
        self._watch_cancels()
        self._watch_output()
        if self.beats.due(now):
            self._beat(now)
        if now >= self._next_orphan_check and not self._stopping.is_set():
            self._next_orphan_check = now + self.orphan_interval
            args = (self.task_type, self.endpoint, self._started_at)
            found = self.recorder.store("look for orphans", self.responses.orphans, *args, max_crashes=self.max_crashes)
            for orphan in found or []:
                self._bring_back(orphan)

    def _beat(self, now: float) -> None:
        """Write the heartbeat: the run in hand, and the runs held that have not started."""
        running = self._in_hand[1].identifier if self._in_hand is not None else None
        waiting = sum(1 for held in self.holdings.all() if held.phase in (Phase.ARRIVED, Phase.WAITING))
        self.beats.beat(now, self.recorder, running, waiting)

    def _watch_cancels(self) -> None:
        """Once a tick: drop the held runs of cancelled tasks that have not started (their rows
        are `skipped`), and have the one in hand stopped (`cancelled`)."""
        held_ids = [held.message.id for held in self.holdings.all() if held.phase is not Phase.ARRIVED]
        if not held_ids:
            return
        cancelled = self.recorder.store("look for cancels", self.responses.cancelled, held_ids) or set()
        for held in self._runnable.take_tasks(cancelled):
            log.info("task %s on %s: cancelled before it started", held.message.identifier, self.endpoint)
            self.holdings.drop(held, finished=True)
            for delivery in held.release():
                self.consumer.ack(delivery)
        if self._in_hand is not None and self._in_hand[0].message.id in cancelled and not self._cancelling:
            log.info("task %s on %s: cancelled while it runs; stopping it", self._in_hand[1].identifier, self.endpoint)
            self._cancelling = self.horse.cancel()

    def _watch_output(self) -> None:
        """Once a tick: have what the run in hand wrote since the last tick shown (its size and
        last 2,000 characters), so a long or stuck run can be read while it goes on."""
        if self._in_hand is None:
            return
        so_far = self.horse.output_so_far()
        if so_far is None or so_far.size == self._output_shown:
            return
        self._output_shown = so_far.size
        job = self._in_hand[1]
        self.recorder.report_output(OutputSoFar(job.task_id, job.run, so_far.size, so_far.text))

    def _bring_back(self, orphan: Orphan) -> None:
        task = orphan.task
        message = TaskMessage.of(task, orphan.run)
        if self.holdings.get((task.id, orphan.run)) is not None:
            return
        held = Held(message, None)
        held.attempts, held.leftover_pgid = orphan.attempts, orphan.pgid
        self.holdings.add(held)
        if orphan.errmsg is not None:
            self._give_up(held, orphan.errmsg)
            return
        log.warning(
            "task %s on %s: its message expired after it was received; running it again", task.identifier, self.endpoint
        )
        held.move(Phase.WAITING)
        self._runnable.add(held)
