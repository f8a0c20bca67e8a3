"""`python -m bench.workhorse [--runs N] [--fresh-runs N]`: what a work horse run costs, per mode.

Runs the bench's no-op handler (bench.handlers) through `WorkHorse.perform()` in both modes:
a persistent child (the default) and a fresh child per run. Prints, per mode, runs/s and the
CPU milliseconds per run of this process (the manager side) and of its children; a child's CPU
is counted once it is reaped, so the persistent child's (its start-up included) is counted at
`close()`, which is inside the measured interval. No RabbitMQ or MariaDB needed.
"""

from __future__ import annotations

import argparse
import resource
import time

from tasker.manager.workhorse import Job, RunState, WorkHorse

HANDLER = "bench.handlers"


def measure(fresh: bool, runs: int) -> dict[str, float]:
    """Perform `runs` no-op runs in one mode; the figures of that mode."""
    horse = WorkHorse(HANDLER, {}, fresh=fresh)
    horse.start()  # the persistent child's import is not part of the run rate
    before_self = resource.getrusage(resource.RUSAGE_SELF)
    before_children = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    for number in range(runs):
        outcome = horse.perform(Job(number, "bench-%d" % number, "bench", {}, ["bench"], "bench", 1, 1, 60.0))
        if outcome.state is not RunState.SUCCEEDED:
            raise SystemExit("run %d: %s" % (number, outcome))
    wall = time.perf_counter() - started
    horse.close()
    after_self = resource.getrusage(resource.RUSAGE_SELF)
    after_children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        "runs": runs,
        "runs_per_s": runs / wall,
        "manager_cpu_ms": _cpu(before_self, after_self) * 1000 / runs,
        "children_cpu_ms": _cpu(before_children, after_children) * 1000 / runs,
    }


def _cpu(before: resource.struct_rusage, after: resource.struct_rusage) -> float:
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.workhorse", description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=2000, help="runs with a persistent child (default 2000)")
    parser.add_argument("--fresh-runs", type=int, default=200, help="runs with a fresh child each (default 200)")
    args = parser.parse_args(argv)
    rows = [("persistent", measure(False, args.runs)), ("fresh", measure(True, args.fresh_runs))]
    print("%-11s %6s %10s %16s %17s" % ("mode", "runs", "runs/s", "manager cpu ms", "children cpu ms"))
    for mode, figures in rows:
        print(
            "%-11s %6d %10.1f %16.3f %17.3f"
            % (mode, figures["runs"], figures["runs_per_s"], figures["manager_cpu_ms"], figures["children_cpu_ms"])
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
