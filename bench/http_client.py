"""A small HTTP/1.1 keep-alive client on asyncio streams, and a closed-loop load generator.

Tornado's own simple client opens a connection per request, so at a few hundred requests a
second it would measure itself. This one keeps one connection per concurrent caller and
parses only what tasker's API sends (Content-Length or chunked bodies).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
import time
from typing import Any, Callable

Request = tuple[str, str, Any]  # method, path, JSON body (None: no body)


class HttpError(Exception):
    """An answer that could not be read, or a status the caller did not expect."""


class Connection:
    """One keep-alive connection to 127.0.0.1:port; reopened when the server closes it."""

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        self.host, self.port = host, port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        """Connect (again)."""
        await self.close()
        self._reader, self._writer = await asyncio.open_connection(self.host, self.port)

    async def close(self) -> None:
        """Close the connection if it is open."""
        if self._writer is not None:
            self._writer.close()
            try:
                await self._writer.wait_closed()
            except OSError:
                pass
        self._reader = self._writer = None

    async def request(self, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
        """Send one request and return (status, body)."""
        if self._writer is None:
            await self.open()
        assert self._reader is not None and self._writer is not None
        data = b"" if body is None else json.dumps(body).encode()
        head = "%s %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Length: %d\r\n" % (
            method,
            path,
            self.host,
            self.port,
            len(data),
        )
        if body is not None:
            head += "Content-Type: application/json\r\n"
        self._writer.write(head.encode() + b"\r\n" + data)
        status, headers = await self._read_head()
        content = await self._read_body(headers)
        if headers.get("connection", "").lower() == "close":
            await self.close()
        return status, content

    async def _read_head(self) -> tuple[int, dict[str, str]]:
        assert self._reader is not None
        try:
            raw = await self._reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
            await self.close()
            raise HttpError("connection closed before an answer") from exc
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        return status, headers

    async def _read_body(self, headers: dict[str, str]) -> bytes:
        assert self._reader is not None
        if "content-length" in headers:
            return await self._reader.readexactly(int(headers["content-length"]))
        if headers.get("transfer-encoding", "").lower() != "chunked":
            return b""
        chunks = []
        while True:
            size = int((await self._reader.readuntil(b"\r\n")).split(b";")[0], 16)
            chunk = await self._reader.readexactly(size + 2)
            if size == 0:
                return b"".join(chunks)
            chunks.append(chunk[:-2])


@dataclasses.dataclass
class LoadResult:
    """What one closed-loop run measured: wall time, per-request latencies, unexpected answers."""

    requests: int
    seconds: float
    latencies: list[float]
    failures: int
    first_failure: str = ""

    @property
    def rate(self) -> float:
        """Requests per second over the whole run."""
        return self.requests / self.seconds if self.seconds > 0 else 0.0


async def closed_loop(
    port: int,
    concurrency: int,
    total: int,
    make_request: Callable[[int], Request],
    expect: tuple[int, ...],
    on_answer: Callable[[int, int], None] | None = None,
) -> LoadResult:
    """Send `total` requests from `concurrency` callers, each waiting for its answer before the
    next (a closed loop); connections are opened before the clock starts. `on_answer(number,
    status)` is called with each answer."""
    connections = [Connection(port) for _ in range(concurrency)]
    await asyncio.gather(*(connection.open() for connection in connections))
    latencies: list[float] = []
    failures: list[str] = []
    counter = iter(range(total))

    async def caller(connection: Connection) -> None:
        for number in counter:
            method, path, body = make_request(number)
            started = time.perf_counter()
            try:
                status, content = await connection.request(method, path, body)
            except (OSError, HttpError) as exc:
                failures.append("%s %s: %s" % (method, path, exc))
                continue
            latencies.append(time.perf_counter() - started)
            if on_answer is not None:
                on_answer(number, status)
            if status not in expect:
                failures.append("%s %s: %d %s" % (method, path, status, content[:200].decode(errors="replace")))

    started = time.perf_counter()
    await asyncio.gather(*(caller(connection) for connection in connections))
    seconds = time.perf_counter() - started
    await asyncio.gather(*(connection.close() for connection in connections))
    return LoadResult(total, seconds, latencies, len(failures), failures[0] if failures else "")


def percentile(values: list[float], fraction: float) -> float:
    """The `fraction` quantile of `values` (nearest rank); 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))]
