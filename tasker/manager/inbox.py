"""Where the connection thread leaves arrivals for the manager's steward thread: a list and a
wake-up file descriptor the steward can wait on together with its handler process."""

from __future__ import annotations

import os
import threading
from typing import Generic, TypeVar

Item = TypeVar("Item")


class Inbox(Generic[Item]):
    """A thread-safe list of items with a file descriptor that is readable while it holds any."""

    def __init__(self) -> None:
        self._items: list[Item] = []
        self._lock = threading.Lock()
        self._read, self._write = os.pipe()
        os.set_blocking(self._read, False)
        os.set_blocking(self._write, False)
        self._signalled = False

    def fileno(self) -> int:
        """The descriptor to wait on (readable: `take()` has something)."""
        return self._read

    def put(self, item: Item) -> None:
        """Add an item; wakes the waiting thread (one write per batch, not per item)."""
        with self._lock:
            self._items.append(item)
            if self._signalled:
                return
            self._signalled = True
        try:
            os.write(self._write, b"x")
        except BlockingIOError:
            pass  # the pipe is full of wake-ups already

    def take(self) -> list[Item]:
        """Every item put since the last call, oldest first."""
        with self._lock:
            items, self._items = self._items, []
            self._signalled = False
        try:
            while os.read(self._read, 4096):
                pass
        except BlockingIOError:
            pass
        return items

    def close(self) -> None:
        """Close the descriptors."""
        for fd in (self._read, self._write):
            os.close(fd)
