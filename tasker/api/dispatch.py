"""From a stored task to the broker, on the IOLoop: publish, the outbox, the delivery deadline.

Storage calls are blocking, so they run in the executor; publishing is asynchronous already.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import Executor
from typing import Any, Callable, TypeVar

from tasker.api.batching import Batcher
from tasker.config import ApiConfig
from tasker.errors import BrokerUnavailable, StorageUnavailable
from tasker.messaging.message import encode_task
from tasker.messaging.publisher import Publisher
from tasker.status import TaskStatus
from tasker.storage import TaskStore
from tasker.storage.tasks import Created, NewTask

log = logging.getLogger(__name__)
T = TypeVar("T")


class Dispatcher:
    """The API's way to storage and broker; owns the background loops of one API process."""

    def __init__(self, settings: ApiConfig, tasks: TaskStore, publisher: Publisher, executor: Executor) -> None:
        self.settings = settings
        self.tasks = tasks
        self.publisher = publisher
        self.executor = executor
        self._loops: list[asyncio.Task] = []
        timeout = settings.wait_for_endpoints_timeout
        self._creating = Batcher(lambda news: tasks.create_many(news, timeout), self.storage)
        self._marking = Batcher(tasks.mark_sent, self.storage)

    async def storage(self, call: Callable[..., T], *args: Any) -> T:
        """Run a blocking storage call in the executor, keeping the IOLoop free."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, call, *args)

    async def create(self, new: NewTask) -> Created:
        """Store a new task (or find its safe retry), batched with concurrent requests."""
        return await self._creating.submit(new)

    async def send(self, task: dict[str, Any]) -> str:
        """Publish a claimed CREATED task and record that it is SENT; return that status.

        If the broker is unavailable the claim is released and the outbox sends it later.
        """
        try:
            await self.publisher.publish(task["type"], task["endpoints"], encode_task(task))
        except BrokerUnavailable:
            await self.storage(self.tasks.release, [task["id"]])
            raise
        await self._marking.submit(task["id"])
        return TaskStatus.SENT.value

    def start(self) -> None:
        """Start the outbox and deadline loops of this API process."""
        self._loops = [
            asyncio.ensure_future(self._every(self.settings.outbox_interval, self.drain_outbox)),
            asyncio.ensure_future(self._every(self.settings.deadline_check_interval, self.check_deadlines)),
        ]

    async def stop(self) -> None:
        """Stop the loops and close the broker connection."""
        for loop in self._loops:
            loop.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        await self.publisher.close()

    async def drain_outbox(self) -> None:
        """Send every CREATED task nobody is sending (the broker was down, or an API died)."""
        claimed = await self.storage(self.tasks.claim_unsent)
        for number, task in enumerate(claimed):
            try:
                status = await self.send(task)
            except BrokerUnavailable as exc:
                log.warning("%d tasks still unsent: %s", len(claimed) - number, exc)
                await self.storage(self.tasks.release, [t["id"] for t in claimed[number + 1 :]])
                return
            log.info("task %s (%s) sent from the outbox: %s", task["identifier"], task["type"], status)

    async def check_deadlines(self) -> None:
        """Mark INCOMPLETE the tasks an endpoint did not receive before their deadline."""
        for task in await self.storage(self.tasks.expire_overdue):
            log.warning(
                "task %s (%s) INCOMPLETE: not received by %s before %s",
                task["identifier"],
                task["type"],
                ", ".join(task["missing"]),
                task["deadline"],
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
