"""The end-to-end run with a polling client: the same POSTs, but the client learns that a task
is DONE by GETting it (`/<type>/<identifier>`) every `interval` seconds, with at most
`poll_concurrency` GETs in flight, over keep-alive connections like the POSTs."""

from __future__ import annotations

import asyncio
import heapq
import json
import time
from typing import Any

from bench.http_client import Connection, HttpError, closed_loop, percentile
from bench.phases import post_body, progress
from bench.processes import CpuMeter

PREFIX = "poll-"


class PollSchedule:
    """The tasks still to poll, each with the time of its next GET (earliest first)."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._heap: list[tuple[float, str]] = []
        self._changed = asyncio.Event()
        self._closed = False

    def add(self, identifier: str) -> None:
        """Poll `identifier` one interval from now."""
        heapq.heappush(self._heap, (time.perf_counter() + self.interval, identifier))
        self._changed.set()

    def close(self) -> None:
        """Nothing more to poll: every `next()` returns None."""
        self._closed = True
        self._changed.set()

    async def next(self) -> str | None:
        """The task whose GET is due first, once it is due (None when closed)."""
        while not self._heap:
            if self._closed:
                return None
            self._changed.clear()
            await self._changed.wait()
        if self._closed:
            return None
        due, identifier = heapq.heappop(self._heap)
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        return identifier


class _Polls:
    """What the pollers saw: GETs sent, tasks DONE, when each was answered and seen DONE."""

    def __init__(self, tasks: int) -> None:
        self.remaining = tasks
        self.gets = 0
        self.failures = 0
        self.first_failure = ""
        self.answered: dict[str, float] = {}
        self.waits: list[float] = []
        self.last_done = 0.0


async def _poller(port: int, path: str, schedule: PollSchedule, polls: _Polls) -> None:
    connection = Connection(port)
    await connection.open()
    try:
        while (identifier := await schedule.next()) is not None:
            try:
                status, content = await connection.request("GET", path + identifier)
                polls.gets += 1
                done = status == 200 and json.loads(content)["task"]["status"] == "DONE"
            except (OSError, HttpError, ValueError, KeyError) as exc:
                polls.failures += 1
                polls.first_failure = polls.first_failure or "GET %s%s: %s" % (path, identifier, exc)
                done = False
            if not done:
                schedule.add(identifier)
                continue
            polls.last_done = time.perf_counter()
            polls.waits.append(polls.last_done - polls.answered[identifier])
            polls.remaining -= 1
            if polls.remaining == 0:
                schedule.close()
    finally:
        await connection.close()


async def polling_end_to_end(
    port: int,
    tasks: int,
    endpoints: list[str],
    concurrency: int,
    poll_concurrency: int,
    interval: float,
    meter: CpuMeter,
) -> dict[str, Any]:
    """POST `tasks` tasks at `concurrency`, poll each until DONE; time the first POST to the
    last task the client saw DONE."""
    schedule = PollSchedule(interval)
    polls = _Polls(tasks)

    def make_request(number: int) -> tuple[str, str, Any]:
        return "POST", "/worker", post_body("%s%06d" % (PREFIX, number), endpoints, number)

    def on_answer(number: int, status: int) -> None:
        if status == 201:
            identifier = "%s%06d" % (PREFIX, number)
            polls.answered[identifier] = time.perf_counter()
            schedule.add(identifier)

    pollers = [asyncio.ensure_future(_poller(port, "/worker/", schedule, polls)) for _ in range(poll_concurrency)]
    meter.start()
    started = time.perf_counter()
    try:
        posted = await closed_loop(port, concurrency, tasks, make_request, (201,), on_answer)
        if posted.failures:
            progress("  %d unexpected answers, the first: %s", posted.failures, posted.first_failure)
            polls.remaining -= posted.failures
            if polls.remaining <= 0:
                schedule.close()
        await asyncio.wait_for(asyncio.gather(*pollers), timeout=max(300.0, tasks / 5.0))
    finally:
        schedule.close()
        for poller in pollers:
            poller.cancel()
    cpu = meter.stop()
    if polls.failures:
        progress("  %d GETs failed, the first: %s", polls.failures, polls.first_failure)
    seconds = polls.last_done - started
    return {
        "tasks": tasks,
        "endpoints": len(endpoints),
        "seconds": round(seconds, 3),
        "rate": round(tasks / seconds, 1),
        "post_seconds": round(posted.seconds, 3),
        "post_failures": posted.failures,
        "poll_interval_ms": round(1000 * interval),
        "poll_concurrency": poll_concurrency,
        "gets": polls.gets,
        "gets_per_s": round(polls.gets / seconds, 1),
        "get_failures": polls.failures,
        "p50_ms": round(1000 * percentile(polls.waits, 0.50), 1),
        "p99_ms": round(1000 * percentile(polls.waits, 0.99), 1),
        "cpu_percent": cpu,
        "cpu_seconds": {name: round(seconds, 3) for name, seconds in meter.used.items()},
    }
