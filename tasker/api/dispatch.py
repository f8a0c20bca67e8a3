"""From a stored task to the broker, on the IOLoop: publish, the outbox, the delivery deadline.

Storage calls are blocking, so they run in the executor; publishing is asynchronous already.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from concurrent.futures import Executor
from typing import Any, Callable, TypeVar

from tasker.api.batching import Batcher
from tasker.api.task_retention import INTERVAL as RETENTION_INTERVAL
from tasker.api.task_retention import TaskRetention
from tasker.clock import utcnow_precise
from tasker.config import ApiConfig
from tasker.errors import BrokerUnavailable, QueueRefused, StorageUnavailable
from tasker.hooks import Hooks
from tasker.lifecycle import after_sent
from tasker.messaging.message import encode_task
from tasker.messaging.publisher import Publisher
from tasker.messaging.topology import expiration_ms
from tasker.records import RunRecord, TaskRecord
from tasker.status import TaskStatus
from tasker.storage import Created, NewTask, TaskStore
from tasker.storage.history import HistoryStore
from tasker.storage.operations import Operations
from tasker.storage.outbox import Outgoing
from tasker.storage.outputs import OutputStore, StoredOutput
from tasker.storage.reads import Read
from tasker.storage.task_retention import TaskRetentionStore

log = logging.getLogger(__name__)
T = TypeVar("T")


class Dispatcher:
    """The API's way to storage and broker; owns the background loops of one API process."""

    def __init__(
        self,
        settings: ApiConfig,
        tasks: TaskStore,
        publisher: Publisher,
        executor: Executor,
        hooks: Hooks | None = None,
    ) -> None:
        self.settings = settings
        self.tasks = tasks
        self.publisher = publisher
        self.executor = executor
        self.hooks = hooks or Hooks()
        self._loops: list[asyncio.Task] = []
        timeout = settings.wait_for_endpoints_timeout
        self._creating = Batcher(
            lambda news: tasks.create_many(news, timeout),
            self.storage,
            weigh=_row_bytes,
            max_weight=settings.max_batch_bytes,
        )
        self._marking = Batcher(tasks.mark_sent, self.storage)
        self._reading = Batcher(tasks.get_many, self.storage)
        self.operations = Operations(tasks.database, tasks.claim_seconds)
        self.outputs = OutputStore(tasks.database)
        self.history = HistoryStore(tasks.database)
        self.task_retention = TaskRetention(TaskRetentionStore(tasks.database), settings.retention_days, self.storage)

    async def storage(self, call: Callable[..., T], *args: Any) -> T:
        """Run a blocking call (storage, or rendering a large answer) in the executor, keeping the IOLoop free."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, call, *args)

    async def create(self, new: NewTask) -> Created:
        """Store a new task (or find its safe retry), batched with concurrent requests."""
        created = await self._creating.submit(new)
        if created.created:
            self.hooks.notify("task_created", created.task)
        return created

    async def read(self, task_type: str, identifier: str) -> Read:
        """A task and its responses, read together with what concurrent requests ask for."""
        return await self._reading.submit((task_type, identifier))

    async def send(self, outgoing: Outgoing, claim_until: dt.datetime) -> TaskStatus:
        """Publish a run of a CREATED task claimed until `claim_until` and record that it is
        SENT; return that status.

        The message expires in the queues at the run's delivery deadline. If the broker is
        unavailable the claim is released and the outbox sends it later.
        """
        task = outgoing.task
        expiration = expiration_ms(outgoing.deadline, utcnow_precise())
        body = encode_task(task, outgoing.run, outgoing.deadline)
        try:
            await self.publisher.publish(task.type, outgoing.endpoints, body, expiration)
        except QueueRefused:
            raise  # the claim is kept: tried again once it runs out, not on every round
        except BrokerUnavailable:
            await self.storage(self.tasks.release, [task.id], claim_until)
            raise
        await self._marking.submit(task.id)
        self.hooks.notify("task_sent", task)
        return after_sent(task.status)

    async def retry(
        self, task_type: str, identifier: str, selection: str | list[str], after_run: int | None
    ) -> tuple[TaskRecord, bool]:
        """Start a new run for the selected endpoints and publish it; the task, and whether a
        run started (False: `after_run` says an identical request did it already)."""
        timeout = self.settings.wait_for_endpoints_timeout
        retried = await self.storage(self.operations.retry, task_type, identifier, selection, after_run, timeout)
        if retried.outgoing is None:
            return retried.task, False
        try:
            status = await self.send(retried.outgoing, retried.claim_until)
        except BrokerUnavailable as exc:
            log.warning("task %s (%s) retried, not confirmed sent: %s", identifier, task_type, exc)
            return retried.task, True
        return retried.task.with_status(status), True

    async def earlier_runs(self, task_id: int) -> list[RunRecord]:
        """The task's runs that retries replaced, by endpoint and run."""
        return await self.storage(self.operations.earlier_runs, task_id)

    async def output(self, task_type: str, identifier: str, endpoint: str, run: int | None) -> StoredOutput:
        """Where the output of an endpoint's current run (or run `run`) of a task is stored."""
        return await self.storage(self.outputs.locate, task_type, identifier, endpoint, run)

    async def output_chunk(self, chunk_id: int) -> str:
        """The text of one stored chunk of a run's output."""
        return await self.storage(self.outputs.chunk, chunk_id)

    async def cancel(self, task_type: str, identifier: str) -> TaskRecord:
        """Record a cancel of the task (its managers stop what runs); the task afterwards."""
        return await self.storage(self.operations.cancel, task_type, identifier)

    def start(self) -> None:
        """Start the outbox, deadline and task retention loops of this API process."""
        self._loops = [
            asyncio.ensure_future(self._every(self.settings.outbox_interval, self.drain_outbox)),
            asyncio.ensure_future(self._every(self.settings.deadline_check_interval, self.check_deadlines)),
            asyncio.ensure_future(self._every(RETENTION_INTERVAL, self.task_retention.prune)),
        ]

    async def stop(self) -> None:
        """Stop the loops and close the broker connection."""
        for loop in self._loops:
            loop.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        await self.publisher.close()

    async def drain_outbox(self) -> None:
        """Send every CREATED task nobody is sending (the broker was down, or an API died).

        A publish is started only while the claim has time left for its confirmation; what is
        left when the claim runs short is released for the next round, so no task is sent
        after another API may have taken it over.
        """
        claim = await self.storage(self.tasks.claim_unsent)
        loop = asyncio.get_running_loop()
        last_start = loop.time() + self.tasks.claim_seconds - self.publisher.confirm_timeout
        for number, outgoing in enumerate(claim.outgoing):
            task = outgoing.task
            if loop.time() > last_start:
                log.info("%d unsent tasks left for the next round of the outbox", len(claim.outgoing) - number)
                await self.storage(self.tasks.release, [o.task.id for o in claim.outgoing[number:]], claim.until)
                return
            try:
                status = await self.send(outgoing, claim.until)
            except QueueRefused as exc:
                log.warning("task %s (%s) not sent, tried again later: %s", task.identifier, task.type, exc)
                continue
            except BrokerUnavailable as exc:
                log.warning("%d tasks still unsent: %s", len(claim.outgoing) - number, exc)
                rest = [o.task.id for o in claim.outgoing[number + 1 :]]
                await self.storage(self.tasks.release, rest, claim.until)
                return
            log.info(
                "task %s (%s) sent from the outbox (run %d): %s", task.identifier, task.type, outgoing.run, status.value
            )

    async def check_deadlines(self) -> None:
        """Mark `missing` the runs not received before their deadline, their tasks INCOMPLETE."""
        for missed in await self.storage(self.tasks.expire_overdue):
            self.hooks.notify("deadline_passed", missed)
            log.warning(
                "task %s (%s) %s: not received by %s in time",
                missed.task.identifier,
                missed.task.type,
                missed.task.status.value,
                ", ".join(missed.endpoints),
            )

    async def _every(self, interval: float, job: Callable[[], Any]) -> None:
        while True:
            try:
                await job()
            except (StorageUnavailable, BrokerUnavailable) as exc:
                log.warning("%s skipped: %s", job.__name__, exc)
            except Exception:
                log.exception("%s failed", job.__name__)
            await asyncio.sleep(interval)


def _row_bytes(new: NewTask) -> int:
    """About what a new task adds to the INSERT of its batch, in bytes."""
    return len(new.payload.text) + 60 * len(new.endpoints or ()) + 200
