"""One owner per held delivery: a `Held` knows, behind its lock, where its run stands and
which deliveries of its message are in hand; `Holdings` is every one this manager holds.

A run is held from its message's arrival until its outcome is recorded and acknowledged:
- `ARRIVED`: its receipt is not recorded yet;
- `WAITING`: received, behind another run;
- `RUNNING`: its handler runs;
- `PERFORMED`: it ended, its outcome is not recorded yet;
and it is let go once recorded (or once the receipt said not to run it).

RabbitMQ closes a channel that holds a delivery unacknowledged longer than its
`consumer_timeout` and redelivers all it held; a run may take hours, and a message is
acknowledged only once its outcome is stored. So the steward renews each held delivery at 40%
of that timeout: a copy goes back to the queue and the original is acknowledged once the broker
confirmed it. Its `delivery` is None meanwhile: the copy comes back and takes its place
(`adopt`). Other copies of the same run that arrive meanwhile (a
redelivery, a duplicate publish) are kept and acknowledged together with it.
"""

from __future__ import annotations

import collections
import enum
import threading
import time
from typing import Callable

from tasker.messaging.consumer import Delivery
from tasker.messaging.message import TaskMessage

REMEMBERED = 10_000


class Phase(enum.Enum):
    """Where a held run stands in this manager."""

    ARRIVED = "arrived"
    WAITING = "waiting"
    RUNNING = "running"
    PERFORMED = "performed"


class Held:
    """A run this manager holds, with the deliveries of its message to settle."""

    def __init__(self, message: TaskMessage, delivery: Delivery | None) -> None:
        self.message = message
        self.key = (message.id, message.run)
        self._lock = threading.Lock()
        self._delivery = delivery
        self._copies: list[Delivery] = []
        self._since = time.monotonic()
        self._phase = Phase.ARRIVED
        # Set by the steward: the run's attempts, and the process group an earlier delivery
        # of the run was last running in.
        self.attempts = 0
        self.leftover_pgid: int | None = None

    @property
    def phase(self) -> Phase:
        """Where the run stands."""
        with self._lock:
            return self._phase

    def move(self, phase: Phase) -> None:
        """Move the run on."""
        with self._lock:
            self._phase = phase

    def adopt(self, delivery: Delivery) -> None:
        """Another delivery of this run arrived: a renewal copy takes the renewed original's
        place; any other is kept to be settled with it."""
        with self._lock:
            if self._delivery is None:
                self._delivery, self._since = delivery, time.monotonic()
            else:
                self._copies.append(delivery)

    def usable(self, is_current: Callable[[Delivery], bool]) -> bool:
        """Before the run starts: keep only deliveries of the open connection. False when none
        is left and none is on its way back: the broker redelivers the message, so this
        holder lets go without running it."""
        with self._lock:
            self._copies = [d for d in self._copies if is_current(d)]
            if self._delivery is None:
                return True  # renewed (or brought back from the database): nothing to lose
            if not is_current(self._delivery):
                if not self._copies:
                    return False
                self._delivery = self._copies.pop(0)
            return True

    def renew_if_due(self, after: float, now: float) -> Delivery | None:
        """The delivery to renew when it has been held `after` seconds; it is given up."""
        with self._lock:
            if self._delivery is None or now - self._since < after:
                return None
            delivery, self._delivery, self._since = self._delivery, None, now
            return delivery

    def release(self) -> list[Delivery]:
        """Let go: every delivery in hand, to acknowledge (or reject)."""
        with self._lock:
            deliveries = [d for d in [self._delivery, *self._copies] if d is not None]
            self._delivery, self._copies = None, []
            return deliveries


class Holdings:
    """Every run this manager holds, by (task id, run), and the ones it finished lately."""

    def __init__(self) -> None:
        self._held: dict[tuple[int, int], Held] = {}
        self._finished: collections.OrderedDict[tuple[int, int], None] = collections.OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[int, int]) -> Held | None:
        """The holder of a run, if held."""
        with self._lock:
            return self._held.get(key)

    def finished_lately(self, key: tuple[int, int]) -> bool:
        """Whether this manager recorded that run's outcome lately."""
        with self._lock:
            return key in self._finished

    def add(self, held: Held) -> None:
        """Hold a run."""
        with self._lock:
            self._held[held.key] = held

    def drop(self, held: Held, finished: bool) -> None:
        """Stop holding a run; `finished`: its outcome is recorded."""
        with self._lock:
            self._held.pop(held.key, None)
            if finished:
                self._finished[held.key] = None
                while len(self._finished) > REMEMBERED:
                    self._finished.popitem(last=False)

    def all(self) -> list[Held]:
        """Every held run."""
        with self._lock:
            return list(self._held.values())

    def __len__(self) -> int:
        with self._lock:
            return len(self._held)
