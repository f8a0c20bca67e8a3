"""Database writes a manager holds back briefly so that several go in one transaction."""

from __future__ import annotations

import time
from typing import Callable, Generic, TypeVar

Item = TypeVar("Item")


class Pending(Generic[Item]):
    """Items waiting to be written together: due once `size` are in, or once the oldest has
    waited `linger` seconds."""

    def __init__(self, size: int, linger: float) -> None:
        self.size = size
        self.linger = linger
        self._items: list[Item] = []
        self._since = 0.0
        self._urgent = False

    def __len__(self) -> int:
        return len(self._items)

    def __bool__(self) -> bool:
        return bool(self._items)

    def add(self, item: Item, at_once: bool = False) -> None:
        """Hold an item back; `at_once`: the items are due now, this one with them."""
        if not self._items:
            self._since = time.monotonic()
        self._items.append(item)
        self._urgent |= at_once

    def due_at(self) -> float | None:
        """When the items are due (`time.monotonic()`), or None when there are none."""
        if not self._items:
            return None
        return 0.0 if self._urgent or len(self._items) >= self.size else self._since + self.linger

    def due(self, now: float) -> bool:
        """Whether the items should be written now."""
        due_at = self.due_at()
        return due_at is not None and now >= due_at

    def batch(self) -> list[Item]:
        """The oldest items, at most `size`."""
        return self._items[: self.size]

    def written(self, count: int) -> None:
        """The first `count` items are written."""
        del self._items[:count]
        self._since = time.monotonic()
        self._urgent = False

    def drop(self, unwanted: Callable[[Item], bool]) -> None:
        """Forget the items that need no writing any more."""
        self._items = [item for item in self._items if not unwanted(item)]
