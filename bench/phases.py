"""The measured phases: HTTP ceilings, POST at several concurrencies, end to end, fan-out."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any, Callable

import pymysql

from bench.http_client import Connection, HttpError, LoadResult, closed_loop, percentile
from bench.processes import CpuMeter
from bench.raw_limits import mysql_args


def progress(message: str, *args: Any) -> None:
    """One progress line on stderr (the table goes to stdout)."""
    print("bench %s  %s" % (time.strftime("%H:%M:%S"), message % args), file=sys.stderr, flush=True)


def load_figures(result: LoadResult, cpu: dict[str, float] | None = None) -> dict[str, Any]:
    """The JSON-able figures of a closed-loop run."""
    figures: dict[str, Any] = {
        "requests": result.requests,
        "seconds": round(result.seconds, 3),
        "rate": round(result.rate, 1),
        "p50_ms": round(1000 * percentile(result.latencies, 0.50), 2),
        "p99_ms": round(1000 * percentile(result.latencies, 0.99), 2),
        "failures": result.failures,
    }
    if result.first_failure:
        figures["first_failure"] = result.first_failure
    if cpu is not None:
        figures["cpu_percent"] = cpu
    return figures


async def measured_loop(
    port: int,
    concurrency: int,
    total: int,
    make_request: Callable[[int], tuple[str, str, Any]],
    expect: tuple[int, ...],
    meter: CpuMeter,
) -> dict[str, Any]:
    """A closed-loop run with the CPU use of every process group over it."""
    meter.start()
    result = await closed_loop(port, concurrency, total, make_request, expect)
    figures = load_figures(result, meter.stop())
    if result.failures:
        progress("  %d unexpected answers, the first: %s", result.failures, result.first_failure)
    return figures


class TaskCounter:
    """Counts tasks in the bench database with one query (a connection of its own)."""

    def __init__(self, uri: str) -> None:
        self.connection = pymysql.connect(**dict(mysql_args(uri), autocommit=True))

    def count(self, prefix: str, status: str | None = None) -> int:
        """Tasks whose identifier starts with `prefix` (and in `status`, if given)."""
        # By type and identifier prefix: a range of the unique index, however long the history.
        sql = "SELECT COUNT(*) FROM task WHERE type = 'worker' AND identifier LIKE %s"
        args: tuple = (prefix + "%",)
        if status is not None:
            sql, args = sql + " AND status = %s", args + (status,)
        with self.connection.cursor() as cursor:
            cursor.execute(sql, args)
            return int(cursor.fetchone()[0])

    def statuses(self, prefix: str) -> dict[str, int]:
        """How many tasks with the prefix are in each status."""
        with self.connection.cursor() as cursor:
            cursor.execute(
                "SELECT status, COUNT(*) FROM task WHERE type = 'worker' AND identifier LIKE %s GROUP BY status",
                (prefix + "%",),
            )
            return {status: int(count) for status, count in cursor.fetchall()}

    def close(self) -> None:
        """Close the connection."""
        self.connection.close()


async def wait_done(counter: TaskCounter, prefix: str, total: int, timeout: float, interval: float = 0.02) -> float:
    """Poll until `total` tasks with the prefix are DONE; return the monotonic time it was seen."""
    deadline = time.monotonic() + timeout
    while True:
        done = await asyncio.to_thread(counter.count, prefix, "DONE")
        now = time.perf_counter()
        if done >= total:
            return now
        if time.monotonic() > deadline:
            states = await asyncio.to_thread(counter.statuses, prefix)
            raise TimeoutError(
                "after %.0f s only %d of %d %s* tasks are DONE: %s" % (timeout, done, total, prefix, states)
            )
        await asyncio.sleep(interval)


def post_body(identifier: str, endpoints: list[str], number: int) -> dict[str, Any]:
    """A task as the bench posts it: a small payload for named endpoints."""
    return {"identifier": identifier, "payload": {"n": number}, "endpoints": endpoints}


async def end_to_end(
    port: int,
    counter: TaskCounter,
    tasks: int,
    endpoints: list[str],
    concurrency: int,
    meter: CpuMeter,
    prefix: str = "e2e-",
) -> dict[str, Any]:
    """Post `tasks` tasks for `endpoints` at `concurrency` and time the first POST to the last DONE."""

    def make_request(number: int) -> tuple[str, str, Any]:
        return "POST", "/worker", post_body("%s%06d" % (prefix, number), endpoints, number)

    meter.start()
    started = time.perf_counter()
    posting = asyncio.ensure_future(closed_loop(port, concurrency, tasks, make_request, (201,)))
    finished = await wait_done(counter, prefix, tasks, timeout=max(300.0, tasks / 5.0))
    posted = await posting
    cpu = meter.stop()
    seconds = finished - started
    if posted.failures:
        progress("  %d unexpected answers, the first: %s", posted.failures, posted.first_failure)
    return {
        "tasks": tasks,
        "endpoints": len(endpoints),
        "seconds": round(seconds, 3),
        "rate": round(tasks / seconds, 1),
        "post_seconds": round(posted.seconds, 3),
        "post_failures": posted.failures,
        "cpu_percent": cpu,
        "cpu_seconds": {name: round(seconds, 3) for name, seconds in meter.used.items()},
    }


async def fan_out(port: int, endpoints: list[str], tasks: int) -> dict[str, Any]:
    """Post `tasks` tasks one after the other to every endpoint; POST-to-DONE latency of each,
    DONE seen by polling GET every 10 ms."""
    connection = Connection(port)
    latencies = []
    try:
        for number in range(tasks):
            identifier = "fan%d-%04d" % (len(endpoints), number)
            started = time.perf_counter()
            status, content = await connection.request("POST", "/fanout", post_body(identifier, endpoints, number))
            if status != 201:
                raise HttpError("POST /fanout answered %d: %s" % (status, content[:300]))
            await _poll_done(connection, "/fanout/" + identifier, started + 120.0)
            latencies.append(time.perf_counter() - started)
    finally:
        await connection.close()
    return {
        "endpoints": len(endpoints),
        "tasks": tasks,
        "p50_ms": round(1000 * percentile(latencies, 0.50), 1),
        "p99_ms": round(1000 * percentile(latencies, 0.99), 1),
        "max_ms": round(1000 * max(latencies), 1),
    }


async def _poll_done(connection: Connection, path: str, deadline: float, poll: float = 0.01) -> None:
    while True:
        status, content = await connection.request("GET", path)
        if status == 200 and json.loads(content)["task"]["status"] == "DONE":
            return
        if time.perf_counter() > deadline:
            raise TimeoutError("%s is not DONE after 120 s: %d %s" % (path, status, content[:300]))
        await asyncio.sleep(poll)


async def wait_healthy(port: int, alive: Callable[[], bool], timeout: float = 60.0) -> None:
    """Wait until GET /health answers 200 (fail early if the process died)."""
    deadline = time.monotonic() + timeout
    while True:
        connection = Connection(port)
        try:
            status, _ = await connection.request("GET", "/health")
            if status == 200:
                return
        except (OSError, HttpError):
            pass
        finally:
            await connection.close()
        if not alive():
            raise RuntimeError("the API exited before it answered")
        if time.monotonic() > deadline:
            raise TimeoutError("the API did not answer /health within %.0f s" % timeout)
        await asyncio.sleep(0.1)
