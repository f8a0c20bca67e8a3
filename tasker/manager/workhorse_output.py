"""A run's output as the manager keeps it: in full up to `max_output` bytes, else its start and
its end around a marker line, never more in memory than about one and a half times that.

The child sends the output as text (see `tasker.manager.workhorse_capture`); it is kept here as
UTF-8, cut only between characters. `take()` hands it out in pieces to be stored as the run
goes on: while it runs, only the start (the first half of `max_output`), which is kept whatever
comes after it; once it ended, the rest. The pieces, in order, make the final text.
"""

from __future__ import annotations

import threading

from tasker.manager.workhorse_job import NO_OUTPUT, RunOutput

MARKER = "\n[... %d bytes of output left out ...]\n"
TAIL_CHARS = 2000  # what a live view shows
TRIM_SLACK = 2**20  # bytes the end may grow past its bound before it is cut back
MIN_PIECE = 4  # the longest UTF-8 character: a piece holds one at least


class OutputKeeper:
    """The output of one run, bounded; `add()` from the thread driving the run, the rest from any."""

    def __init__(self, max_output: int) -> None:
        self.max_output = max_output
        self.half = max_output // 2
        self.rest = max_output - self.half
        self._head = bytearray()  # the first bytes, up to `half`
        self._tail = bytearray()  # what came after them, cut back to the last `rest` once over the bound
        self._head_full = False
        self._size = 0
        self._final: bytes | None = None  # the kept text once the run ended
        self._taken = 0  # bytes of the kept text handed out by take()
        self._lock = threading.Lock()

    def add(self, text: str) -> None:
        """Keep what the run wrote next."""
        data = text.encode("utf-8", "replace")
        with self._lock:
            if self._final is not None:
                return
            self._size += len(data)
            if not self._head_full:
                cut = _boundary(data, self.half - len(self._head))
                self._head += data[:cut]
                data = data[cut:]
                self._head_full = bool(data)
            self._tail += data
            if self._size > self.max_output and len(self._tail) > self.rest + min(self.rest, TRIM_SLACK):
                del self._tail[: _boundary(self._tail, len(self._tail) - self.rest, up=True)]

    def end(self) -> RunOutput:
        """The run ended: its output as kept (the start, a marker, the end when it was too long)."""
        with self._lock:
            if self._final is None:
                self._final = self._kept()
                self._head = self._tail = bytearray()
            if not self._final:
                return NO_OUTPUT
            return RunOutput(self._final.decode("utf-8"), self._size, self._size > self.max_output)

    def so_far(self, chars: int = TAIL_CHARS) -> RunOutput:
        """The last `chars` characters written so far, with the size so far: cheap, for live views."""
        with self._lock:
            if self._final is not None:
                recent = self._final[-MIN_PIECE * chars :]
            elif self._size > self.max_output:
                recent = bytes(self._tail[-MIN_PIECE * chars :])
            else:
                recent = bytes(self._head[-MIN_PIECE * chars :] + self._tail[-MIN_PIECE * chars :])
            text = recent.decode("utf-8", "ignore")[-chars:]  # "ignore": a character cut at the front
            return RunOutput(text, self._size, self._size > self.max_output)

    def take(self, limit: int) -> str:
        """The next piece of the kept text not handed out yet, at most `limit` bytes of UTF-8; ""
        if there is none now. While the run goes on only its start is handed out."""
        with self._lock:
            kept = self._head if self._final is None else self._final
            end = _boundary(kept, self._taken + max(limit, MIN_PIECE))  # `kept` holds whole characters
            piece = bytes(kept[self._taken : end])
            self._taken = end
        return piece.decode("utf-8")

    def _kept(self) -> bytes:
        if self._size <= self.max_output:
            return bytes(self._head + self._tail)
        start = _boundary(self._tail, max(0, len(self._tail) - self.rest), up=True)
        end = self._tail[start:]
        left_out = self._size - len(self._head) - len(end)
        return bytes(self._head) + (MARKER % left_out).encode("utf-8") + bytes(end)


def _boundary(data: bytes | bytearray, at: int, up: bool = False) -> int:
    """The character boundary of UTF-8 `data` nearest `at` (clamped to it), looking down, or up."""
    at = max(0, min(at, len(data)))
    step = 1 if up else -1
    while 0 < at < len(data) and data[at] & 0xC0 == 0x80:  # a continuation byte
        at += step
    return at
