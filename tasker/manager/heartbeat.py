"""A manager's heartbeat: every `manager.heartbeat_interval` seconds its steward writes its
registration's `last_seen_time`, with its host, pid and version, the identifier it runs, and
how many messages wait for it (`GET /endpoints`).

How many wait is the broker's count of the messages ready in the queue plus the runs this
manager holds and has not started: the broker counts only what it has not delivered, and a
manager takes up to `prefetch` messages ahead. The broker is asked a moment before each beat,
on the connection's own thread (`Consumer.ask_depth`), and the steward reads the answer at the
beat: it never waits for the broker, and no other thread touches the connection.
"""

from __future__ import annotations

import logging
import os
import socket
from typing import Protocol

import tasker
from tasker.manager.recorder import Recorder
from tasker.storage import Heartbeat, RegistrationStore

log = logging.getLogger("tasker.manager.manager")


class DepthSource(Protocol):
    """What a heartbeat needs of the consumer: the broker's count of its queue, on request."""

    depth: int | None

    def ask_depth(self) -> None: ...


class Heartbeats:
    """When a manager beats and what it says; owned by the manager's steward thread."""

    def __init__(
        self,
        registrations: RegistrationStore,
        consumer: DepthSource,
        task_type: str,
        endpoint: str,
        interval: float,
        ask_ahead: float,
    ) -> None:
        self.registrations = registrations
        self.consumer = consumer
        self.task_type = task_type
        self.endpoint = endpoint
        self.interval = interval
        self.ask_ahead = ask_ahead  # seconds before a beat the broker is asked for the depth
        self.host, self.pid = socket.gethostname(), os.getpid()
        self._next_beat = 0.0
        self._asked = False
        self._queued: int | None = None  # as the latest beat said

    def register(self, now: float) -> None:
        """The first beat, as the manager starts: registered, idle, its queue not counted yet.
        Blocking; StorageUnavailable when the database does not answer."""
        self.registrations.beat(self.task_type, self.endpoint, self._heartbeat(None, None))
        self._next_beat = now + self.interval

    def due(self, now: float) -> bool:
        """Whether a beat is due at `now` (monotonic seconds); asks the broker for the depth of
        the queue when one is about to be."""
        if not self._asked and now >= self._next_beat - self.ask_ahead:
            self.consumer.ask_depth()
            self._asked = True
        return now >= self._next_beat

    def beat(self, now: float, recorder: Recorder, running: str | None, waiting: int) -> None:
        """Write a beat: running `running` (an identifier, or None), with `waiting` runs held and
        not started. A database away loses it (the recorder logs it); the next one comes."""
        self._next_beat, self._asked = now + self.interval, False
        depth = self.consumer.depth
        self._queued = None if depth is None else depth + waiting
        heartbeat = self._heartbeat(running, self._queued)
        recorder.store("write a heartbeat", self.registrations.beat, self.task_type, self.endpoint, heartbeat)

    def last(self, recorder: Recorder) -> None:
        """The beat of a manager that stops cleanly: it runs nothing any more."""
        heartbeat = self._heartbeat(None, self._queued)
        recorder.store("write the last heartbeat", self.registrations.beat, self.task_type, self.endpoint, heartbeat)

    def _heartbeat(self, running: str | None, queued: int | None) -> Heartbeat:
        return Heartbeat(self.host, self.pid, tasker.__version__, running, queued, self.interval)
