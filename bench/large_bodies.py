"""The IOLoop under large bodies: `/health` answered while 16 POSTs of 1 MiB are parsed.

Threads, not the bench's event loop: the POST bodies are encoded once beforehand, and the
prober has a keep-alive connection of its own, so the figures are the API's and not the client's.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import threading
import time
from typing import Any

from bench.phases import TaskCounter, progress, wait_done

POSTS = 16
BODY_BYTES = 1024 * 1024


def nested_payload(size: int) -> list:
    """A legal payload of at most `size` bytes of JSON (as json.dumps writes it): small lists
    nested 31 deep."""
    unit = json.loads("[" * 30 + "[0, 1], [2, 3]" + "]" * 30)
    return [unit] * (size // (len(json.dumps(unit)) + 2))


def measure(port: int, endpoints: list[str], prefix: str = "large-") -> dict[str, Any]:
    """POST `POSTS` bodies of about 1 MiB at once; GET /health back to back meanwhile."""
    payload = json.dumps(nested_payload(BODY_BYTES - 200))
    bodies = [
        (
            '{"identifier": "%s%03d", "endpoints": %s, "payload": %s}' % (prefix, n, json.dumps(endpoints), payload)
        ).encode()
        for n in range(POSTS)
    ]
    latencies: list[float] = []
    statuses: list[int] = []
    posting = threading.Event()
    prober = threading.Thread(target=_probe, args=(port, posting, latencies))
    posting.set()
    prober.start()
    started = time.perf_counter()
    posts = [threading.Thread(target=_post, args=(port, body, statuses)) for body in bodies]
    for thread in posts:
        thread.start()
    for thread in posts:
        thread.join()
    seconds = time.perf_counter() - started
    posting.clear()
    prober.join()
    latencies.sort()
    return {
        "posts": len(statuses),
        "created": statuses.count(201),
        "seconds": round(seconds, 2),
        "health_requests": len(latencies),
        "p50_ms": round(1000 * latencies[len(latencies) // 2], 1),
        "p99_ms": round(1000 * latencies[int(len(latencies) * 0.99)], 1),
        "max_ms": round(1000 * latencies[-1], 1),
    }


def _post(port: int, body: bytes, statuses: list[int]) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        connection.request("POST", "/worker", body, {"Content-Type": "application/json"})
        answer = connection.getresponse()
        answer.read()
        statuses.append(answer.status)
    finally:
        connection.close()


def _probe(port: int, posting: threading.Event, latencies: list[float]) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        while posting.is_set():
            started = time.perf_counter()
            connection.request("GET", "/health")
            connection.getresponse().read()
            latencies.append(time.perf_counter() - started)
    finally:
        connection.close()


async def phase(port: int, endpoints: list[str], counter: TaskCounter) -> dict[str, Any]:
    """/health while 16 POSTs of 1 MiB are parsed; then until the managers have done them."""
    progress("/health while %d POSTs of 1 MiB are parsed", POSTS)
    figures = await asyncio.to_thread(measure, port, endpoints)
    progress("  /health p99 %.1f ms, POSTs took %.1f s", figures["p99_ms"], figures["seconds"])
    posted = time.perf_counter()
    figures["done_seconds"] = round(await wait_done(counter, "large-", figures["created"], timeout=300) - posted, 2)
    progress("  the managers did them %.1f s later", figures["done_seconds"])
    return figures
