"""The runs a manager received and has not started: in the order they came, and apart, those
of limited tasks waiting for a slot (`max_concurrency`), each with when to ask again."""

from __future__ import annotations

import collections
from typing import Iterable

from tasker.manager.holding import Held


class RunQueue:
    """Runs to start, one at a time; owned by the manager's steward thread."""

    def __init__(self) -> None:
        self._ready: collections.deque[Held] = collections.deque()
        # Asked for a slot and got none; in the order of when to ask again (one interval for all).
        self._waiting: collections.deque[tuple[float, Held]] = collections.deque()

    def add(self, held: Held) -> None:
        """A run to start as soon as the runs before it have."""
        self._ready.append(held)

    def wait(self, held: Held, until: float) -> None:
        """A run that found no slot free: offer it again at `until` (monotonic seconds)."""
        self._waiting.append((until, held))

    def next(self, now: float) -> Held | None:
        """The run to try next: one whose wait is over, else the next that came; None if none."""
        if self._waiting and self._waiting[0][0] <= now:
            return self._waiting.popleft()[1]
        return self._ready.popleft() if self._ready else None

    def wake_at(self) -> float | None:
        """When a waiting run is to be offered again (None: none waits)."""
        return self._waiting[0][0] if self._waiting else None

    def take_tasks(self, task_ids: Iterable[int]) -> list[Held]:
        """Remove and return the runs of these tasks, waiting or not."""
        ids = set(task_ids)
        taken = [held for held in self._ready if held.message.id in ids]
        taken += [held for _, held in self._waiting if held.message.id in ids]
        if taken:
            self._ready = collections.deque(held for held in self._ready if held.message.id not in ids)
            self._waiting = collections.deque(entry for entry in self._waiting if entry[1].message.id not in ids)
        return taken

    @property
    def ready(self) -> bool:
        """Whether a run is ready to start (not counting those waiting for a slot)."""
        return bool(self._ready)
