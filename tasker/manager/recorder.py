"""What a manager has to write to the database: receipts, starts and outcomes, each held back
briefly so that several share a transaction, written in batches, with outages waited out.

Receipts wait a few milliseconds (the delivery deadline watches them); a run's start waits
half a second, so a run that ends sooner is recorded by its outcome alone; outcomes wait long
enough to share a transaction while the next run goes on, or not at all when nothing runs.
A batch the database refuses for good is split: each outcome is written alone; one it refuses
even so is written with its output cut to a note and its tail, and one refused still (a result
over its packet limit) is recorded as a failed run that says why.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from typing import Any, Callable

from tasker.errors import StatementTooLarge, StorageError, StorageUnavailable
from tasker.lifecycle import ReceiptDecision
from tasker.manager.holding import Held
from tasker.manager.pending import Pending
from tasker.manager.workhorse import Job, Outcome
from tasker.status import ResponseState
from tasker.storage import Arrival, Finish, OutputSoFar, Progress, ResponseStore, Start
from tasker.storage.outputs import output_tail

log = logging.getLogger(__name__)
BATCH = 200
RECEIPT_LINGER = 0.005
START_LINGER = 0.5
OUTCOME_LINGER = 0.02
# Characters of output one transaction of outcomes writes at most (its first outcome goes in
# whatever its size): runs that end while the database is away must not come back as one huge write.
BATCH_OUTPUT = 64 * 2**20
# A run's progress is written at most this often: the latest report since the last write.
PROGRESS_EVERY = 0.5

Ended = tuple[Held, Job, Outcome]


class Recorder:
    """The pending writes of one manager's steward thread, and the database calls that make them."""

    def __init__(
        self, responses: ResponseStore, endpoint: str, retry_delay: float, max_crashes: int | None = None
    ) -> None:
        self.responses = responses
        self.endpoint = endpoint
        self.retry_delay = retry_delay
        self.max_crashes = max_crashes
        self.arrived: Pending[Held] = Pending(BATCH, RECEIPT_LINGER)
        self.starts: Pending[Start] = Pending(BATCH, START_LINGER)
        self.ended: Pending[Ended] = Pending(BATCH, OUTCOME_LINGER)
        self._progress: dict[tuple[int, int], Progress] = {}
        self._outputs: dict[tuple[int, int], OutputSoFar] = {}
        self._progress_due: float | None = None
        self._retry_at = 0.0
        self._refused: StorageError | None = None  # why the database refused the last write for good

    def receipts(self, now: float) -> list[tuple[Held, ReceiptDecision, int | None]] | None:
        """Record the receipts that are due; each held run with what to do with it, or None."""
        if not self.arrived.due(now) or now < self._retry_at:
            return None
        batch = self.arrived.batch()
        arrivals = [Arrival(held.message.id, held.message.run, held.message.type) for held in batch]
        decided = self.store(
            "record receipts", self.responses.record_receipts, arrivals, self.endpoint, self.max_crashes
        )
        if decided is None:
            return None
        self.arrived.written(len(batch))
        return [(held, decision, pgid) for held, (decision, pgid) in zip(batch, decided, strict=True)]

    def outcomes(self, now: float, idle: bool) -> list[Ended] | None:
        """Record the starts and outcomes that are due (every outcome when `idle`: nothing to
        wait for); the runs whose outcome is now stored, or None when nothing was written."""
        if now < self._retry_at:
            return None
        outcomes_due = self.ended.due(now) or (bool(self.ended) and idle)
        if not (outcomes_due or self.starts.due(now)):
            return None
        ended = _bounded(self.ended.batch()) if outcomes_due else []
        ending = {held.key for held, _, _ in ended}
        self.starts.drop(lambda start: (start.task_id, start.run) in ending)
        starts = self.starts.batch()
        finishes = [_finish(job, outcome) for _, job, outcome in ended]
        recorded = self.store("record outcomes", self.responses.record, starts, finishes, self.endpoint)
        if recorded is None and self._refused is not None:
            recorded = self._record_alone(starts, ended)
        if recorded is None:
            return None
        self.starts.written(len(starts))
        self.ended.written(len(ended))
        return ended

    def _record_alone(self, starts: list[Start], ended: list[Ended]) -> dict | None:
        """The database refused a batch for good: store the starts, then each outcome alone (see
        `_record_one`), so that nothing a handler returns or writes wedges the manager. None
        when the database went away meanwhile: the batch waits."""
        if starts and self.store("record starts", self.responses.record, starts, [], self.endpoint) is None:
            if self._refused is None:
                return None
            log.error(
                "the database refused the starts of %d runs on %s; not recording them", len(starts), self.endpoint
            )
        for _, job, outcome in ended:
            if not self._record_one(job, outcome):
                return None
        self._retry_at = 0.0
        return {}

    def _record_one(self, job: Job, outcome: Outcome) -> bool:
        """Store one outcome alone; refused for good, store it with its output cut to a note and
        its tail, and refused still, as a failed run that says why. False when the database
        went away meanwhile."""
        finish = _finish(job, outcome)
        if self.store("record an outcome", self.responses.record, [], [finish], self.endpoint) is not None:
            return True
        if self._refused is not None and finish.output:
            log.error(
                "task %s on %s: the database refused the outcome with %d bytes of output; storing its tail only",
                job.identifier,
                self.endpoint,
                finish.output_size,
            )
            finish = dataclasses.replace(finish, output=_output_refused(self._refused, finish))
            if self.store("record an outcome", self.responses.record, [], [finish], self.endpoint) is not None:
                return True
        if self._refused is None:
            return False
        errmsg = _refused_errmsg(self._refused, outcome)
        log.error("task %s on %s: %s; recording it as failed", job.identifier, self.endpoint, errmsg)
        failed = [_finish(job, Outcome.failed(errmsg))]
        return self.store("record a failure", self.responses.record, [], failed, self.endpoint) is not None

    def report_progress(self, report: Progress) -> None:
        """Keep a run's latest progress, to be written within `PROGRESS_EVERY` seconds."""
        self._progress[(report.task_id, report.run)] = report
        self._live_due()

    def report_output(self, report: OutputSoFar) -> None:
        """Keep what a run has written so far, to be written within `PROGRESS_EVERY` seconds."""
        self._outputs[(report.task_id, report.run)] = report
        self._live_due()

    def _live_due(self) -> None:
        if self._progress_due is None:
            self._progress_due = time.monotonic() + PROGRESS_EVERY

    def progress(self, now: float) -> None:
        """Write the progress and output reports that are due (a failed write is dropped: newer
        ones come)."""
        if self._progress_due is None or now < self._progress_due or now < self._retry_at:
            return
        reports, outputs = list(self._progress.values()), list(self._outputs.values())
        self._progress, self._outputs, self._progress_due = {}, {}, None
        self.store("record progress", self.responses.record_live, reports, outputs, self.endpoint)

    def wake_at(self, idle: bool) -> float | None:
        """When something will be due to be written (`time.monotonic()`), or None."""
        times = [due for due in (p.due_at() for p in (self.arrived, self.starts, self.ended)) if due is not None]
        if self._progress_due is not None:
            times.append(self._progress_due)
        if self.ended and idle:
            times.append(0.0)
        return max(min(times), self._retry_at) if times else None

    def store(self, what: str, call: Callable, *args: Any, **kwargs: Any) -> Any:
        """Run a storage call; None when the database is unavailable or refused it (then every
        write waits `retry_delay` seconds)."""
        self._refused = None
        try:
            return call(*args, **kwargs)
        except StorageUnavailable as exc:
            log.error("cannot %s on %s, retrying in %ss: %s", what, self.endpoint, self.retry_delay, exc)
        except StorageError as exc:
            log.error("the database refused to %s on %s: %s", what, self.endpoint, exc)
            self._refused = exc
        self._retry_at = time.monotonic() + self.retry_delay
        return None


def _refused_errmsg(refusal: StorageError, outcome: Outcome) -> str:
    """Why a run whose outcome the database refused for good is failed."""
    if isinstance(refusal, StatementTooLarge):
        size = len(json.dumps(outcome.payload))
        limit = "" if refusal.limit is None else " (max_allowed_packet is %d bytes)" % refusal.limit
        return "result too large for the database: %d bytes%s" % (size, limit)
    return "cannot store the handler's result: %s" % refusal


def _output_refused(refusal: StorageError, finish: Finish) -> str:
    """What is stored as the output of a run whose output the database refused: why, then its end."""
    note = "[tasker: the database refused this run's output (%d bytes): %s; its end follows]\n"
    return note % (finish.output_size, refusal) + output_tail(finish.output)


def _bounded(ended: list[Ended]) -> list[Ended]:
    """The first of these outcomes whose output, together, is within `BATCH_OUTPUT` (one at least)."""
    total = 0
    for count, (_, _, outcome) in enumerate(ended):
        total += len(outcome.output.text)
        if count and total > BATCH_OUTPUT:
            return ended[:count]
    return ended


def _finish(job: Job, outcome: Outcome) -> Finish:
    state = ResponseState(outcome.state.value)
    output = outcome.output
    return Finish(job.task_id, job.run, state, outcome.errnr, outcome.errmsg, outcome.payload, output.text, output.size)
