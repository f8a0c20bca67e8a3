"""Parse POST bodies where they cannot stall the IOLoop.

Parsing and checking a body of a megabyte takes tens to hundreds of milliseconds of CPU, all
of it holding the interpreter lock: in a thread it would stall the IOLoop as surely as on it.
Small bodies (most of them) are parsed on the loop at once; larger ones in a pool of worker
processes, which hand back the task with its payload as canonical JSON text.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import logging
import multiprocessing
import os

from tasker.api.validation import parse_new_task
from tasker.records import NewTask

log = logging.getLogger(__name__)
# Bodies up to this size cost well under a millisecond to parse: not worth a process hop.
INLINE_BYTES = 32 * 1024
# Parsing yields the CPU to the API process itself, whose loop answers everybody.
NICENESS = 5


class BodyParser:
    """`parse()` a POST body into a NewTask, in a worker process when it is large."""

    def __init__(self, processes: int, max_endpoints: int, max_depth: int, max_timeout: float = 86400.0) -> None:
        self.processes = processes
        self._check = functools.partial(
            parse_new_task, max_endpoints=max_endpoints, max_depth=max_depth, max_timeout=max_timeout
        )
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None

    def start(self) -> None:
        """Start the worker processes now, so that the first large body does not wait for them."""
        if self.processes < 1:
            return
        pool = self._workers()
        for _ in range(self.processes):
            pool.submit(int)

    async def parse(self, task_type: str, body: bytes) -> NewTask:
        """The NewTask of `body`, or InvalidTask saying what is wrong with it."""
        if len(body) <= INLINE_BYTES or self.processes < 1:
            return self._check(task_type, body)
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._workers(), self._check, task_type, body)
        except concurrent.futures.process.BrokenProcessPool:
            log.warning("a body parser process died; starting new ones")
            self._pool = None
            return await loop.run_in_executor(self._workers(), self._check, task_type, body)

    def close(self) -> None:
        """Stop the worker processes."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def _workers(self) -> concurrent.futures.ProcessPoolExecutor:
        if self._pool is None:
            # Spawned, not forked: the API process has threads (the executor's, the broker's).
            context = multiprocessing.get_context("spawn")
            self._pool = concurrent.futures.ProcessPoolExecutor(
                self.processes, mp_context=context, initializer=os.nice, initargs=(NICENESS,)
            )
        return self._pool
