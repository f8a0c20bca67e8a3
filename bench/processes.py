"""The bench's own processes (bin/api, bin/manager, the Celery peer's workers), and what /proc
says about them."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / "bin"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class Process:
    """One process started from bin/, its output in a log file, in a session of its own so a
    Ctrl-C in the terminal reaches only the bench, which then stops it in order."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.log_path = log_dir / ("%s.log" % name)
        self._log = open(self.log_path, "wb")
        self.popen = subprocess.Popen(
            args, cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    @property
    def pid(self) -> int:
        """The process id (bin/ scripts exec Python, so it is the Python process)."""
        return self.popen.pid

    def alive(self) -> bool:
        """Whether it still runs."""
        return self.popen.poll() is None

    def log(self) -> str:
        """Everything it has logged so far."""
        return self.log_path.read_text(errors="replace")

    def members(self) -> list[int]:
        """The process and its descendants that are still in its session."""
        if not self.alive():
            return []
        return [pid for pid in process_tree(self.pid) if _session(pid) == self.pid]

    def stop(self, timeout: float = 30.0, members: list[int] | None = None) -> None:
        """SIGTERM, then SIGKILL if it is still there after `timeout` seconds; then SIGKILL its
        descendants (`members`, as they were before the SIGTERM) that outlived it."""
        members = self.members() if members is None else members
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()
        for pid in members:
            if pid != self.pid and _session(pid) == self.pid:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self._log.close()

    def pause(self) -> None:
        """Stop the process where it is (SIGSTOP); its connections stay open."""
        os.kill(self.pid, signal.SIGSTOP)

    def resume(self) -> None:
        """Let a paused process go on (SIGCONT)."""
        os.kill(self.pid, signal.SIGCONT)

    def has_logged(self, text: str) -> bool:
        """Whether a line of its log contains `text`."""
        return text in self.log()


class ProcessGroup:
    """Every process the bench started; `stop_all()` ends them (SIGTERM, then SIGKILL)."""

    def __init__(self, log_dir: Path, env: dict[str, str]) -> None:
        self.log_dir = log_dir
        self.env = env
        self.processes: list[Process] = []
        log_dir.mkdir(parents=True, exist_ok=True)

    def start(self, name: str, args: list[str]) -> Process:
        """Start a process and remember it."""
        process = Process(name, args, self.env, self.log_dir)
        self.processes.append(process)
        return process

    def api(self, port: int) -> Process:
        """Start bin/api of the bench run mode on `port`."""
        return self.start("api", [str(BIN / "api"), "--mode", "bench", "--port", str(port)])

    def manager(self, task_type: str, endpoint: str) -> Process:
        """Start bin/manager of the bench run mode for one endpoint."""
        args = [str(BIN / "manager"), "--mode", "bench", "--endpoint", endpoint, "--tasktype", task_type]
        return self.start("manager-%s-%s" % (task_type, endpoint), args)

    def stop_all(self, timeout: float = 30.0) -> None:
        """Signal every process at once, wait for each, kill what outlives `timeout`."""
        members = [process.members() for process in self.processes]
        for process in self.processes:
            if process.alive():
                process.popen.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for process, its_members in zip(self.processes, members, strict=True):
            process.stop(max(0.1, deadline - time.monotonic()), its_members)


def wait_until(condition, timeout: float, what: str, interval: float = 0.05) -> None:
    """Poll `condition()` until it is true; raise TimeoutError naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("timed out after %.0f s waiting for %s" % (timeout, what))
        time.sleep(interval)


def wait_consuming(managers: list[tuple[Process, str]], timeout: float) -> None:
    """Wait until each manager has logged that it consumes its queue (queue names end in
    `.<type>.<endpoint>`), or fail naming the first that died or did not."""
    for process, suffix in managers:

        def consuming(process: Process = process, suffix: str = suffix) -> bool:
            if not process.alive():
                raise RuntimeError("%s exited:\n%s" % (process.name, process.log()[-2000:]))
            return any("consuming " in line and line.endswith(suffix) for line in process.log().splitlines())

        wait_until(consuming, timeout, "%s to consume its queue" % process.name, 0.1)


def rss_mb(pid: int) -> float:
    """Resident memory (VmRSS) of a process in MB."""
    for line in Path("/proc/%d/status" % pid).read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024.0, 1)
    return 0.0


def cpu_seconds(pids: list[int], waited: bool = False) -> float:
    """User plus system CPU time of these processes so far, in seconds (gone ones count 0);
    with `waited`, also that of the children they have waited for."""
    total = 0
    for pid in pids:
        try:
            fields = Path("/proc/%d/stat" % pid).read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime: fields 14 and 15 of stat
        if waited:
            total += int(fields[13]) + int(fields[14])  # cutime, cstime: fields 16 and 17
    return total / CLOCK_TICKS


def tree_cpu_seconds(roots: list[int]) -> float:
    """CPU time of these processes and of all their descendants, alive or waited for."""
    return cpu_seconds([pid for root in roots for pid in process_tree(root)], waited=True)


def process_tree(pid: int) -> list[int]:
    """The process and all its descendants alive now (a Celery worker and its pool)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            parents.setdefault(ppid, []).append(int(entry.name))
    found, pending = [], [pid]
    while pending:
        current = pending.pop()
        found.append(current)
        pending.extend(parents.get(current, []))
    return found


def _session(pid: int) -> int:
    """The session id of a process, or 0 if it is gone."""
    try:
        return os.getsid(pid)
    except OSError:
        return 0


def pids_named(*names: str) -> list[int]:
    """Processes whose command name is one of `names` (the broker's and database's servers)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() in names:
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


class CpuMeter:
    """CPU use of named groups of processes over an interval, in percent of one core. `groups`
    are read process by process; `trees` (processes the bench started) with every descendant,
    so the pools of a process that forks count with it."""

    def __init__(self, groups: dict[str, list[int]], trees: dict[str, list[int]] | None = None) -> None:
        self.groups = groups
        self.trees = trees or {}
        self._before: dict[str, float] = {}
        self._started = 0.0
        self.used: dict[str, float] = {}

    def _read(self) -> dict[str, float]:
        found = {name: tree_cpu_seconds(roots) for name, roots in self.trees.items()}
        found.update((name, cpu_seconds(pids)) for name, pids in self.groups.items())
        return found

    def start(self) -> None:
        """Take the first reading."""
        self._before = self._read()
        self._started = time.monotonic()

    def stop(self) -> dict[str, float]:
        """CPU% of each group since `start()`; the CPU seconds stay in `used`."""
        wall = max(1e-9, time.monotonic() - self._started)
        self.used = {name: seconds - self._before[name] for name, seconds in self._read().items()}
        return {name: round(100.0 * seconds / wall, 1) for name, seconds in self.used.items()}


def initialize(env: dict[str, str], *flags: str) -> None:
    """`bin/initialize --mode bench` with `flags`; a RuntimeError with its output if it fails."""
    done = subprocess.run(
        [str(BIN / "initialize"), "--mode", "bench", *flags],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if done.returncode != 0:
        raise RuntimeError("bin/initialize %s failed:\n%s%s" % (" ".join(flags), done.stdout, done.stderr))
