"""Where a work horse keeps its child process, and what its driver waits on.

The stable holds at most one child (`tasker.manager.workhorse_process.Child`): kept between
runs, or, for a fresh work horse, one a run; a child found dead while idle is replaced. Every
child's socket and pidfd are watched by the stable's epoll, whose descriptor the driver waits
on, together with a pipe that other threads write to wake the driver (a cancel, a kill).
"""

from __future__ import annotations

import logging
import os
import select
import threading

from tasker.errors import WorkHorseError
from tasker.manager.workhorse_process import Child, ProtocolError, describe_exit

log = logging.getLogger(__name__)


class Stable:
    """The child of one handler module's work horse, its epoll, and its wake-up pipe.

    `lock` is the work horse's: `wake()` is called under it, and `close()` takes it to close
    the pipe, so that no other thread writes to a closed descriptor.
    """

    def __init__(self, module_name: str, max_result: int, fresh: bool, lock: threading.Lock) -> None:
        self.module_name = module_name
        self.max_result = max_result
        self.fresh = fresh
        self.child: Child | None = None
        self.pgid: int | None = None  # the process group of the current child, running or idle
        self._lock = lock
        self._epoll = select.epoll()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._epoll.register(self._wake_r, select.EPOLLIN)

    def start(self, timeout: float) -> None:
        """Have a live child that has imported the module (a fresh one then ends); see `WorkHorse.start`."""
        if self.child is not None and self.child.alive():
            return
        child = self.ready()
        try:
            child.wait_ready(timeout)
        except ProtocolError as exc:
            self.bury(child)
            raise WorkHorseError("handler process of %s broke the protocol: %s" % (self.module_name, exc)) from exc
        except BaseException:
            self.bury(child)
            raise
        if self.fresh:
            self.bury(child)

    def ready(self) -> Child:
        """The child to give the next run: the one kept, unless it ended idle, else a new one."""
        child = self.child
        if child is not None and not child.alive():
            log.warning("handler process of %s ended idle: %s", self.module_name, describe_exit(self.bury(child)))
            child = None
        if child is None:
            child = self.child = Child(self.module_name, self.max_result, self.fresh, self._epoll)
            self.pgid = child.pgid
        return child

    def bury(self, child: Child) -> int:
        """Reap `child` (see `Child.finish`), no longer kept if it was; its return code."""
        if self.child is child:
            self.child = None
            self.pgid = None
        return child.finish()

    def fileno(self) -> int:
        """The epoll's descriptor: readable when a child sent something or exited, or on a wake-up."""
        return self._epoll.fileno()

    def wait(self, timeout: float) -> None:
        """Block until `fileno()` is readable, or `timeout` seconds (-1: no limit) have passed."""
        self._epoll.poll(timeout)

    def wake(self) -> None:
        """Make `fileno()` readable, so that the driver acts; the caller holds the lock."""
        if self._wake_w >= 0:
            try:
                os.write(self._wake_w, b"x")
            except BlockingIOError:
                pass  # full: a wake-up is pending anyway

    def drain(self) -> None:
        """Take in the wake-ups written so far: the driver is acting on them."""
        try:
            while os.read(self._wake_r, 512):
                pass
        except BlockingIOError:
            pass

    def close(self, grace: float) -> None:
        """End the child (closing its socket ends an idle one; SIGKILL after `grace` seconds at
        most), and close the epoll and the pipe."""
        child = self.child
        if child is not None:
            child.end(grace)
            self.bury(child)
        with self._lock:
            if self._wake_w >= 0:
                os.close(self._wake_r)
                os.close(self._wake_w)
                self._wake_r = self._wake_w = -1
                self._epoll.close()
