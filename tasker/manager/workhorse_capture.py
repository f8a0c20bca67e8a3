"""In the work horse's child: what each run writes to fds 1 and 2, and logs, sent to the manager.

For a run, fds 1 and 2 are the write end of a pipe of its own (`os.dup2`, so the processes the
handler starts write there too), and a handler on the root logger writes formatted records to
it. While the run goes on, a thread of the child (the pump) reads the pipe and passes the text
on in pieces: as soon as 64 KiB have come, or 0.2 s after the first byte not yet passed on.
After the run the fds are restored and the run's own thread reads what is left, up to EOF, and
passes it on: a run that wrote nothing costs no thread a wake-up. Only if a process the handler
started holds the pipe open still does the pump go on reading it, for `LINGER` seconds at
most, while the run's thread waits; what such a process writes later is read and dropped (it
is not killed by SIGPIPE), by the pump. Bytes are decoded as UTF-8, errors replaced.
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
DRAIN_READS = 16  # reads at the end of a run before a process still writing is left to the pump


class Capture:
    """The output of run after run: `start(send)` before the handler, `finish()` after it; `send`
    is called with each piece of text, from the capture's thread or from the one calling `finish()`."""

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
        self._log_handler.shut()  # the pump reads on meanwhile: a record being written gets through
        stream, self._stream = self._stream, None
        if stream is not None:
            self._pump.unwatch(stream)
        os.dup2(self._saved[0], 1)
        os.dup2(self._saved[1], 2)
        if stream is not None:
            self._pump.finish(stream, linger)


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
    """The pipe of one run as it is read: text decoded, batched, sent; once `ended`, dropped."""

    def __init__(self, fd: int, send: Callable[[str], None]) -> None:
        self.fd = fd
        self._send = send
        self._decoder: codecs.IncrementalDecoder | None = None  # made when the first bytes come
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._due: float | None = None  # when the pending bytes must go
        self.end_at: float | None = None  # set once the run ended: stop passing on by then
        self.ended = False  # all passed on: what comes now is dropped
        self.watched = False  # by the pump's epoll
        self.closed = False
        self._broken = False

    def timeout(self, now: float) -> float | None:
        """Seconds until a batch or the end is due; None if nothing is."""
        times = [at for at in (self._due, self.end_at) if at is not None and not self.ended]
        return None if not times else max(0.0, min(times) - now)

    def take(self, data: bytes) -> None:
        """Keep what was read, to be sent with its batch (at once if the batch is big)."""
        if self.ended:
            return
        self._pending.append(data)
        self._pending_size += len(data)
        if self._due is None:
            self._due = time.monotonic() + BATCH_SECONDS
        if self._pending_size >= PIECE:
            self.flush(final=False)

    def due(self, now: float) -> bool:
        """Send the batch if it is old enough; whether the end has come."""
        if self._due is not None and now >= self._due:
            self.flush(final=False)
        return self.end_at is not None and now >= self.end_at

    def end(self) -> None:
        """Send all that is pending and drop what comes after."""
        if not self.ended:
            try:
                self.flush(final=True)
            finally:
                self.ended = True

    def flush(self, final: bool) -> None:
        """Send what is pending (all of it, a character cut short included, if `final`)."""
        if self._decoder is None:
            if not self._pending:
                return
            self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        text = self._decoder.decode(b"".join(self._pending), final=final)
        self._pending, self._pending_size, self._due = [], 0, None
        if text and not self._broken:
            try:
                self._send(text)
            except OSError:  # the manager is gone: the child dies with it
                self._broken = True


class _Pump:
    """The pipes being read, by a thread of the child and, at a run's end, by the run's thread
    (one at a time: under the lock): the run's, and those of earlier runs that processes hold
    open still, read and dropped. The thread waits in epoll, to which a run's pipe is added, and
    from which it is taken before the run's write ends are closed, without waking the thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ended = threading.Condition(self._lock)  # a stream handed to the thread has ended
        self._streams: dict[int, _Stream] = {}  # by the read end's fd
        self._epoll = select.epoll()
        self._wake_r, self._wake_w = os.pipe()
        self._epoll.register(self._wake_r, select.EPOLLIN)
        self._thread: threading.Thread | None = None

    def follow(self, fd: int, send: Callable[[str], None]) -> _Stream:
        """Read the pipe `fd` of a run that starts, sending its text on with `send`."""
        os.set_blocking(fd, False)  # read by two threads: neither may block on it
        stream = _Stream(fd, send)
        with self._lock:
            self._streams[fd] = stream
            self._watch(stream)
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="output-pump", daemon=True)
            self._thread.start()
        return stream

    def unwatch(self, stream: _Stream) -> None:
        """Leave the run's pipe to the run's thread: else the EOF that comes when the run's write
        ends are closed would wake the pump."""
        with self._lock:
            if stream.watched:
                self._epoll.unregister(stream.fd)
                stream.watched = False

    def finish(self, stream: _Stream, linger: float) -> None:
        """The run ended: pass on what its pipe holds; if a process holds it open still, have
        the pump pass on the rest, and wait until EOF or `linger` seconds."""
        with self._lock:
            for _ in range(DRAIN_READS):
                if not self._read(stream):
                    break
            if stream.closed:
                return
            stream.end_at = time.monotonic() + linger
            self._watch(stream)
            os.write(self._wake_w, b"x")  # the pump's timeout changed
            while not stream.ended:
                self._ended.wait(1.0)
                if not stream.ended and (self._thread is None or not self._thread.is_alive()):
                    return  # it failed (a handler that closed its descriptors): nothing more will come

    def _run(self) -> None:
        while True:
            with self._lock:
                now = time.monotonic()
                timeouts = [t for t in (s.timeout(now) for s in self._streams.values()) if t is not None]
            events = self._epoll.poll(min(timeouts) + 0.001 if timeouts else -1)
            with self._lock:
                for fd, _ in events:
                    if fd == self._wake_r:
                        os.read(fd, 512)
                    elif fd in self._streams:  # else closed meanwhile by the run's thread
                        self._read(self._streams[fd])
                now = time.monotonic()
                for stream in self._streams.values():
                    if not stream.ended and stream.due(now):
                        self._end(stream)

    def _watch(self, stream: _Stream) -> None:
        self._epoll.register(stream.fd, select.EPOLLIN)
        stream.watched = True

    def _read(self, stream: _Stream) -> bool:
        """Read once from the pipe, the lock held; whether data came (at EOF: end and close it)."""
        if stream.closed:
            return False
        try:
            data = os.read(stream.fd, PIECE)
        except BlockingIOError:
            return False
        if data:
            stream.take(data)
            return True
        try:
            self._end(stream)
        finally:
            del self._streams[stream.fd]
            if stream.watched:
                self._epoll.unregister(stream.fd)
            os.close(stream.fd)
            stream.closed, stream.watched = True, False
        return False

    def _end(self, stream: _Stream) -> None:
        try:
            stream.end()
        finally:
            self._ended.notify_all()


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
