"""Tasks kept in flight through HAProxy, and the DONE count followed over time."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import text

from tests.helpers import Api


class Poster:
    """POSTs `total` worker tasks for `endpoints` at about `rate` a second from several threads.

    A POST that fails (an API went away under HAProxy, a 502/503) is sent again with the same
    identifier, which tasker answers `200` if it stored the task the first time.
    """

    def __init__(self, port: int, prefix: str, total: int, endpoints: list[str], rate: float, folder: Path) -> None:
        self.api = Api(port)
        self.prefix, self.total, self.endpoints, self.rate, self.folder = prefix, total, endpoints, rate, folder
        self.statuses: dict[str, int] = {}
        self.retries = 0
        self._thread = threading.Thread(target=self._run, daemon=True)

    def identifier(self, number: int) -> str:
        """The identifier of task `number`."""
        return "%s%05d" % (self.prefix, number)

    def start(self) -> None:
        """Start posting in the background."""
        self.started = time.monotonic()
        self._thread.start()

    def join(self, timeout: float) -> None:
        """Wait until every task was posted."""
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "posting took over %ss" % timeout

    def _run(self) -> None:
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(self._post, range(self.total)))

    def _post(self, number: int) -> None:
        time.sleep(max(0.0, self.started + number / self.rate - time.monotonic()))
        payload = {"dir": str(self.folder)}
        body = {"identifier": self.identifier(number), "payload": payload, "endpoints": self.endpoints}
        deadline = time.monotonic() + 120
        while True:
            try:
                answer = self.api.post("worker", body)
                if answer.status in (200, 201, 202):
                    self.statuses[body["identifier"]] = answer.status
                    return
            except OSError:
                pass
            self.retries += 1
            if time.monotonic() > deadline:
                self.statuses[body["identifier"]] = -1
                return
            time.sleep(0.5)


@dataclass
class Progress:
    """Samples of (seconds since the start, tasks DONE), taken every `interval` seconds."""

    engine: object
    prefix: str
    interval: float = 0.25
    samples: list[tuple[float, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.started = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def now(self) -> float:
        """Seconds since sampling started."""
        return time.monotonic() - self.started

    def done(self) -> int:
        """The latest count of DONE tasks."""
        return self.samples[-1][1] if self.samples else 0

    def finished(self, total: int) -> float:
        """When `total` tasks were first seen DONE (seconds since the start)."""
        return round(next(moment for moment, count in self.samples if count >= total), 1)

    def stop(self) -> None:
        """Stop sampling."""
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        query = text("SELECT COUNT(*) FROM task WHERE type = 'worker' AND identifier LIKE :p AND status = 'DONE'")
        with self.engine.connect() as connection:
            while not self._stop.is_set():
                count = connection.execute(query, {"p": self.prefix + "%"}).scalar_one()
                connection.commit()  # a fresh snapshot for the next count
                self.samples.append((self.now(), count))
                self._stop.wait(self.interval)

    def save(self, path: Path, faults: dict[str, float]) -> None:
        """Write the samples and the faults' moments to `path` as JSON, to be read later."""
        path.write_text(json.dumps({"faults": faults, "samples": self.samples}) + "\n")

    def recovery(
        self, fault: float, until: float, total: int, before: float = 10.0, window: float = 2.0
    ) -> float | None:
        """Seconds from `fault` until tasks are DONE again at half the rate of the `before`
        seconds before it (over `window` seconds), looked for from the end of the longest time
        without a task DONE between `fault` and `until`; or until all `total` are DONE. None if
        neither happened yet."""
        rate = (self._at(fault) - self._at(fault - before)) / before
        wanted = max(1.0, 0.5 * rate * window)
        resumed = self._longest_gap(fault, until)[1]
        for moment, count in self.samples:
            if moment >= resumed and count >= total:
                return round(moment - fault, 1)
            if moment >= resumed + window and count - self._at(moment - window) >= wanted:
                return round(moment - window - fault, 1)
        return None

    def longest_stall(self, start: float, end: float) -> float:
        """The longest time between `start` and `end` during which no task became DONE."""
        return round(self._longest_gap(start, end)[0], 1)

    def _longest_gap(self, start: float, end: float) -> tuple[float, float]:
        """The longest time between `start` and `end` without a task becoming DONE, and the
        moment it ended (`start` if there was none; the last sample if it goes on)."""
        longest, ended, since, last = 0.0, start, start, self._at(start)
        for moment, count in self.samples:
            if start < moment <= end:
                if count != last:
                    since, last = moment, count
                if moment - since >= longest and moment > since:
                    longest, ended = moment - since, moment
        return longest, ended

    def _at(self, moment: float) -> int:
        """The DONE count at `moment` (the latest sample taken by then)."""
        count = 0
        for sampled, value in self.samples:
            if sampled > moment:
                break
            count = value
        return count
