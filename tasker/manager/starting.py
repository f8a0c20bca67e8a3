"""How the steward of a `Manager` starts the next run: a slot for a limited task, the
extensions' say, what an earlier delivery left running, then the work horse. A part of
`Manager` (its base class), kept apart to keep each file short."""

from __future__ import annotations

import logging
import os
import threading
import time

from tasker.hooks import Hooks
from tasker.lifecycle import StartVerdict
from tasker.manager.holding import Held, Holdings, Phase
from tasker.manager.recorder import Recorder
from tasker.manager.run_queue import RunQueue
from tasker.manager.workhorse import Job, Outcome, kill_group
from tasker.manager.workhorse_job import Horse
from tasker.messaging.consumer import Consumer
from tasker.storage import LimitStore, Start

log = logging.getLogger("tasker.manager.manager")
SLOT_WAIT = 0.5  # seconds between asks for a slot of a task with max_concurrency


class Starting:
    """Starting runs, for the steward of a `Manager`; it uses the manager's own state."""

    # The manager's state this part reads and changes (set up by Manager.__init__); it also
    # calls the manager's `_end`.
    endpoint: str
    consumer: Consumer
    horse: Horse
    hooks: Hooks
    holdings: Holdings
    recorder: Recorder
    limits: LimitStore
    _runnable: RunQueue
    _in_hand: tuple[Held, Job] | None
    _cancelling: bool
    _output_shown: int
    _stopping: threading.Event

    def _start_next(self) -> None:
        while self._in_hand is None and not self._stopping.is_set():
            held = self._runnable.next(time.monotonic())
            if held is None:
                return
            if not held.usable(self.consumer.is_current):
                self.holdings.drop(held, finished=False)  # its connection is gone: the broker redelivers it
                continue
            job = job_of(held, self.endpoint)
            if held.message.limits and not self._take_slot(held, job):
                continue
            prepared = self.hooks.prepare_run(job)
            if isinstance(prepared, Outcome):
                self._end(held, job, prepared)
                continue
            self._kill_leftovers(held, job)
            try:
                pgid = self.horse.begin(prepared)
            except Exception as exc:
                log.exception("task %s on %s: cannot start the handler process", job.identifier, self.endpoint)
                self._end(held, prepared, Outcome.failed("cannot start the handler process: %s" % exc))
                continue
            held.move(Phase.RUNNING)
            self._in_hand, self._cancelling, self._output_shown = (held, prepared), False, 0
            # A run delivered again is recorded running at once: should it take this manager
            # down as well, its next delivery knows it was running (manager.max_crashes).
            self.recorder.starts.add(Start(job.task_id, job.run, pgid), at_once=held.attempts > 1)
            self.hooks.notify("run_started", prepared, pgid)
            log.debug("task %s started on %s", job.identifier, self.endpoint)

    def _take_slot(self, held: Held, job: Job) -> bool:
        """Take a slot of a task with limits in the database; False: the run waits for one (it
        stays `received`), or is not to start at all (it is acknowledged)."""
        verdict = self.recorder.store("take a slot", self.limits.take_slot, job.task_id, self.endpoint, job.run)
        if verdict is None or verdict is StartVerdict.WAIT:
            self._runnable.wait(held, time.monotonic() + SLOT_WAIT)
            return False
        if verdict is StartVerdict.GO:
            return True
        why = "held back by max_errors" if verdict is StartVerdict.SKIP else "not to be started any more"
        log.info("task %s on %s: %s", job.identifier, self.endpoint, why)
        self.holdings.drop(held, finished=True)
        for delivery in held.release():
            self.consumer.ack(delivery)
        return False

    def _give_up(self, held: Held, errmsg: str) -> None:
        """Record a run failed without performing it again (what it left running is killed)."""
        job = job_of(held, self.endpoint)
        log.error(
            "task %s on %s: %s; recording it as failed, not running it again", job.identifier, self.endpoint, errmsg
        )
        self._kill_leftovers(held, job)
        self._end(held, job, Outcome.failed(errmsg))

    def _kill_leftovers(self, held: Held, job: Job) -> None:
        """Kill the process group an earlier delivery of this run was running in, if any is left
        (the handler's own children outlive a manager killed with SIGKILL)."""
        pgid = held.leftover_pgid
        if pgid is None or pgid == self.horse.pgid or pgid <= 1 or pgid == os.getpgid(0):
            return
        if kill_group(pgid):
            log.warning("task %s on %s: killed what its last run left running", job.identifier, self.endpoint)


def job_of(held: Held, endpoint: str) -> Job:
    """The job of a held run, as the work horse and the extensions see it."""
    message = held.message
    return Job(
        task_id=message.id,
        identifier=message.identifier,
        type=message.type,
        payload=message.payload,
        endpoints=list(message.endpoints),
        endpoint=endpoint,
        run=message.run,
        attempts=held.attempts,
        timeout=message.timeout,
    )
