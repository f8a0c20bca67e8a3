"""In the work horse's child: what each run writes to fds 1 and 2, and logs, sent to the manager.

For a run, fds 1 and 2 are the write end of a pipe of its own (`os.dup2`, so the processes the
handler starts write there too), and a handler on the root logger writes formatted records to
it. A thread of the child reads the pipe and passes the text on in pieces: as soon as 64 KiB
have come, or 0.2 s after the first byte not yet passed on. After the run the fds are restored
and what is left is passed on, waiting at most `LINGER` seconds for a process the handler
started that holds the pipe open still; what such a process writes later is read and dropped
(it is not killed by SIGPIPE), by the same thread. Bytes are decoded as UTF-8, errors replaced.
"""

from __future__ import annotations

import codecs
import logging
import os
import select
import sys
import threading
import time
from typing import Callable

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
PIECE = 64 * 1024
BATCH_SECONDS = 0.2
LINGER = 0.5


class Capture:
    """The output of run after run: `start(send)` before the handler, `finish()` after it; `send`
    is called, from the capture's thread, with each piece of text."""

    def __init__(self) -> None:
        self._saved = (os.dup(1), os.dup(2))  # the originals, put back after each run
        self._pump = _Pump()
        self._log_handler = _PipeLogHandler()
        self._stream: _Stream | None = None

    def start(self, send: Callable[[str], None]) -> None:
        """Send fds 1 and 2 and the root logger's records into a new pipe."""
        flush_stdio()
        read, write = os.pipe()
        os.dup2(write, 1)
        os.dup2(write, 2)
        self._log_handler.open(write)  # it closes `write` at the end of the run
        logging.getLogger().addHandler(self._log_handler)
        self._stream = self._pump.follow(read, send)

    def finish(self, linger: float = LINGER) -> None:
        """Restore fds 1 and 2 and the root logger, and pass on what is left (see the module)."""
        flush_stdio()
        logging.getLogger().removeHandler(self._log_handler)
        self._log_handler.shut()
        os.dup2(self._saved[0], 1)
        os.dup2(self._saved[1], 2)
        if self._stream is not None:
            self._pump.finish(self._stream, linger)
            self._stream = None


class _PipeLogHandler(logging.Handler):
    """Writes each record, formatted, to the pipe of the run; nothing between runs."""

    def __init__(self) -> None:
        super().__init__()
        self.fd = -1
        self.setFormatter(logging.Formatter(LOG_FORMAT))

    def open(self, fd: int) -> None:
        """Write to `fd` from now on (it is closed by `shut()`)."""
        with self.lock:
            self.fd = fd

    def emit(self, record: logging.LogRecord) -> None:
        """Write the record as one line (a traceback adds its own)."""
        try:
            data = (self.format(record) + "\n").encode("utf-8", "replace")
            if self.fd >= 0:  # under the handler's lock: close() cannot come in between
                _write_all(self.fd, data)
        except Exception:
            self.handleError(record)

    def shut(self) -> None:
        """Close the pipe's write end; a thread logging meanwhile waits for the lock."""
        with self.lock:
            if self.fd >= 0:
                os.close(self.fd)
                self.fd = -1


class _Stream:
    """The pipe of one run as the pump reads it: text decoded, batched, sent."""

    def __init__(self, fd: int, send: Callable[[str], None]) -> None:
        self.fd = fd
        self._send = send
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._due: float | None = None  # when the pending bytes must go
        self.end_at: float | None = None  # set once the run ended: stop passing on by then
        self.done = threading.Event()
        self._broken = False

    def timeout(self, now: float) -> float | None:
        """Seconds until a batch or the end is due; None if nothing is."""
        times = [at for at in (self._due, self.end_at) if at is not None]
        return None if not times else max(0.0, min(times) - now)

    def read(self) -> bool:
        """Read what the pipe has; False at EOF (every writer is gone)."""
        data = os.read(self.fd, PIECE)
        if data:
            self._pending.append(data)
            self._pending_size += len(data)
            if self._due is None:
                self._due = time.monotonic() + BATCH_SECONDS
        return bool(data)

    def due(self, now: float) -> bool:
        """Send the batch if it is big or old enough; whether the end has come."""
        if self._pending_size >= PIECE or (self._due is not None and now >= self._due):
            self.flush(final=False)
        return self.end_at is not None and now >= self.end_at

    def flush(self, final: bool) -> None:
        """Send what is pending (all of it, a character cut short included, if `final`)."""
        text = self._decoder.decode(b"".join(self._pending), final=final)
        self._pending, self._pending_size, self._due = [], 0, None
        if text and not self._broken:
            try:
                self._send(text)
            except OSError:  # the manager is gone: the child dies with it
                self._broken = True


class _Pump:
    """One thread of the child that reads the run's pipe, and drops what comes through the pipes
    of earlier runs that processes hold open still."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stream: _Stream | None = None
        self._left: list[int] = []  # the thread's own
        self._wake_r, self._wake_w = os.pipe()
        self._thread: threading.Thread | None = None

    def follow(self, fd: int, send: Callable[[str], None]) -> _Stream:
        """Read the pipe `fd` of a run that starts, sending its text on with `send`."""
        stream = _Stream(fd, send)
        with self._lock:
            self._stream = stream
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="output-pump", daemon=True)
            self._thread.start()
        os.write(self._wake_w, b"x")
        return stream

    def finish(self, stream: _Stream, linger: float) -> None:
        """The run ended: wait until its text is sent, up to EOF or `linger` seconds."""
        stream.end_at = time.monotonic() + linger
        os.write(self._wake_w, b"x")
        while not stream.done.wait(1.0):
            if self._thread is None or not self._thread.is_alive():
                return  # it failed (a handler that closed its descriptors): nothing more will come

    def _run(self) -> None:
        while True:
            with self._lock:
                stream = self._stream if self._stream is not None and not self._stream.done.is_set() else None
            poller = select.poll()
            for fd in [self._wake_r, *([stream.fd] if stream else []), *self._left]:
                poller.register(fd, select.POLLIN)
            timeout = None if stream is None else stream.timeout(time.monotonic())
            for fd, _ in poller.poll(None if timeout is None else timeout * 1000 + 1):
                if fd == self._wake_r:
                    os.read(fd, 512)
                elif stream is not None and fd == stream.fd:
                    if not stream.read():
                        self._end(stream, eof=True)
                else:
                    self._drop(fd)
            if stream is not None and not stream.done.is_set() and stream.due(time.monotonic()):
                self._end(stream, eof=False)

    def _end(self, stream: _Stream, eof: bool) -> None:
        """The run's text is all sent; its pipe is closed, or read on and dropped."""
        try:
            stream.flush(final=True)
        finally:
            if eof:
                os.close(stream.fd)
            else:
                self._left.append(stream.fd)
            stream.done.set()

    def _drop(self, fd: int) -> None:
        if not os.read(fd, PIECE):
            self._left.remove(fd)
            os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def flush_stdio() -> None:
    """What the handler printed goes out before what comes next (and before a SIGKILL may come)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:
            pass
