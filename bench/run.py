"""`python -m bench.run [options]` (`make bench`): tasker's benchmark.

Resets the bench database and vhost, measures the machine's raw limits (confirmed publishes,
committed inserts), starts its own bin/api and bin/manager processes of the `bench` run mode
(config/bench.config.yaml, a handler that returns at once), measures POST throughput and
latency, end-to-end throughput (with a client that waits on the database, and with one that
polls each task over HTTP) and fan-out latency, reads their memory from /proc, and stops them.
Then the Celery peer (bench/celery_peer.py) does the end-to-end run's executions with Celery
workers. Every process it started is stopped; one table goes to stdout, progress to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

from bench import cluster, history, large_bodies, raw_limits, workhorse
from bench.history import fill_history, measure_pages
from bench.http_client import closed_loop
from bench.phases import (
    TaskCounter,
    end_to_end,
    fan_out,
    load_figures,
    measured_loop,
    post_body,
    progress,
    wait_done,
    wait_healthy,
)
from bench.polling import polling_end_to_end
from bench.processes import (
    ROOT,
    CpuMeter,
    ProcessGroup,
    initialize,
    pids_named,
    rss_mb,
    wait_consuming,
    wait_until,
)
from bench.report import comparison, format_table, notes
from tasker.config import Config, load_config

MODE = "bench"
LOG_DIR = ROOT / "var" / "bench" / "log"
WORKER_ENDPOINTS = ["bench1", "bench2"]
POST_LEVELS = (1, 16, 64)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line: sizes of each phase, phases to skip, where to write JSON."""
    parser = argparse.ArgumentParser(prog="bench.run", description="Benchmark tasker.")
    parser.add_argument("--tasks", type=int, default=2000, help="end-to-end tasks, each for 2 endpoints")
    parser.add_argument("--post-requests", type=int, default=1000, help="POSTs per concurrency level")
    parser.add_argument(
        "--managers-working", action="store_true", help="keep the managers working during the POST rows (not paused)"
    )
    parser.add_argument("--e2e-concurrency", type=int, default=64, help="concurrent POSTs of the end-to-end run")
    parser.add_argument("--fanout", default="20,50", help="fan-out sizes in endpoints, comma-separated")
    parser.add_argument("--fanout-tasks", type=int, default=20, help="sequential tasks per fan-out size")
    parser.add_argument("--skip-fanout", action="store_true", help="no fan-out phase")
    parser.add_argument("--skip-raw", action="store_true", help="do not measure the raw limits")
    parser.add_argument("--skip-workhorse", action="store_true", help="do not measure the work horse alone")
    parser.add_argument("--skip-polling", action="store_true", help="no end-to-end run with a polling client")
    parser.add_argument("--poll-interval", type=float, default=0.1, help="seconds between two GETs of a task")
    parser.add_argument("--poll-concurrency", type=int, default=64, help="GETs in flight at most, polling client")
    parser.add_argument(
        "--skip-cluster", action="store_true", help="no end-to-end run on scripts/cluster's 3 RabbitMQ nodes, 2 APIs"
    )
    parser.add_argument("--skip-celery", action="store_true", help="leave the Celery peer out")
    parser.add_argument("--celery-concurrency", type=int, default=2, help="pool processes of each Celery worker")
    parser.add_argument("--skip-tasker", action="store_true", help="no tasker processes: raw limits and Celery only")
    parser.add_argument("--raw-seconds", type=float, default=5.0, help="duration of each raw-limit run")
    parser.add_argument(
        "--history",
        type=int,
        default=0,
        help="then time history pages and end to end again with this many finished tasks in the database",
    )
    parser.add_argument(
        "--only-history-pages",
        action="store_true",
        help="only the API, the database filled with --history tasks (default 1,000,000) and history pages timed",
    )
    parser.add_argument("--json", type=Path, help="also write the figures as JSON to this file")
    args = parser.parse_args(argv)
    try:
        args.fanout_sizes = sorted({int(size) for size in args.fanout.split(",") if size.strip()})
    except ValueError:
        parser.error("--fanout takes sizes like 20,50")
    if any(size < 1 or size > 999 for size in args.fanout_sizes):
        parser.error("--fanout sizes must be 1 to 999")
    if (
        min(args.tasks, args.e2e_concurrency, args.poll_concurrency, args.celery_concurrency) < 1
        or args.poll_interval <= 0
    ):
        parser.error("--tasks, the concurrencies and --poll-interval must be positive")
    return args


def reset(env: dict[str, str]) -> None:
    """Drop and recreate the bench database tables and vhost."""
    progress("resetting the bench database and vhost")
    initialize(env, "-d", "-r", "--reset")


def measure_raw(config: Config, seconds: float) -> dict[str, float]:
    """The machine's raw limits over 8 connections each."""
    progress("raw limit: confirmed persistent publishes, 8 connections, %.0f s", seconds)
    publishes = raw_limits.confirmed_publishes(config.manager.message_queue, 8, seconds)
    progress("  %.0f publishes/s", publishes)
    progress("raw limit: committed single-row inserts, 8 connections, %.0f s", seconds)
    inserts = raw_limits.committed_inserts(config.manager.db.uri, 8, seconds)
    progress("  %.0f inserts/s", inserts)
    return {"publishes_per_s": round(publishes, 1), "inserts_per_s": round(inserts, 1)}


def measure_workhorse() -> dict[str, Any]:
    """What running a handler in a child process costs, per run, in both modes of the work horse."""
    progress("work horse: 2000 no-op runs in a persistent child, 100 in a fresh child each")
    return {"persistent": workhorse.measure(False, 2000), "fresh": workhorse.measure(True, 100)}


def free_port() -> int:
    """A port nobody listens on now (from the kernel's ephemeral range)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def client_ceiling(group: ProcessGroup, requests: int) -> dict[str, Any]:
    """What the HTTP client does at concurrency 64 against a server that answers `{}` at once."""
    port = free_port()
    server = group.start("trivial-server", [sys.executable, "-m", "bench.trivial_server", str(port)])
    try:
        wait_until(lambda: server.has_logged("ready") or not server.alive(), 30, "the trivial server")
        meter = CpuMeter({"client": [os.getpid()], "server": [server.pid]})
        meter.start()
        result = asyncio.run(closed_loop(port, 64, requests, lambda n: ("GET", "/", None), (200,)))
        return load_figures(result, meter.stop())
    finally:
        server.stop()


async def tasker_phases(group: ProcessGroup, config: Config, args: argparse.Namespace, results: dict) -> None:
    """Start API and managers, then POST, end-to-end and fan-out phases, and memory."""
    port = config.api.port
    progress("starting bin/api on port %d and %d worker managers", port, len(WORKER_ENDPOINTS))
    api = group.api(port)
    workers = [group.manager("worker", endpoint) for endpoint in WORKER_ENDPOINTS]
    await wait_healthy(port, api.alive)
    consuming = [(worker, ".worker." + endpoint) for worker, endpoint in zip(workers, WORKER_ENDPOINTS, strict=True)]
    await asyncio.to_thread(wait_consuming, consuming, 120)
    memory = results["memory_mb"] = {"api": {"idle": rss_mb(api.pid)}, "manager": {"idle": rss_mb(workers[0].pid)}}
    meter = CpuMeter(
        {"mariadb": pids_named("mariadbd", "mysqld"), "rabbitmq": pids_named("beam.smp"), "client": [os.getpid()]},
        trees={"api": [api.pid], "managers": [worker.pid for worker in workers]},
    )
    meter.start()
    await asyncio.sleep(2.0)
    results["idle"] = {"cpu_percent": meter.stop()}
    progress("idle for 2 s: cpu%% %s", results["idle"]["cpu_percent"])
    progress("API alone: GET of an unknown path (404, no database) at c=64")
    results["api_ceiling"] = await measured_loop(
        port, 64, max(5000, args.post_requests), lambda n: ("GET", "/nothing-here", None), (404,), meter
    )
    results["post"] = {}
    # The managers share this machine's two cores with the API: paused, the POST figures are
    # the API's own (with managers on other hosts, as in production); the tasks wait in their
    # queues and are drained after. The end-to-end run measures everything working at once.
    paused = [] if args.managers_working else workers
    for worker in paused:
        worker.pause()
    try:
        for level in POST_LEVELS:
            progress("POST at concurrency %d: %d requests", level, args.post_requests)

            def make_request(number: int, level: int = level) -> tuple[str, str, Any]:
                identifier = "post-c%d-%06d" % (level, number)
                return "POST", "/worker", post_body(identifier, WORKER_ENDPOINTS, number)

            figures = await measured_loop(port, level, args.post_requests, make_request, (201,), meter)
            results["post"][str(level)] = figures
            progress(
                "  %.0f tasks/s, p50 %.1f ms, p99 %.1f ms, cpu%% %s",
                figures["rate"],
                figures["p50_ms"],
                figures["p99_ms"],
                figures["cpu_percent"],
            )
    finally:
        for worker in paused:
            worker.resume()
    counter = TaskCounter(config.manager.db.uri)
    try:
        progress("waiting until the managers have done every POSTed task")
        drained = len(POST_LEVELS) * args.post_requests
        meter.start()
        drain_started = time.perf_counter()
        await wait_done(counter, "post-", drained, timeout=600)
        results["post_drain_seconds"] = round(time.perf_counter() - drain_started, 2)
        meter.stop()
        results["drain"] = {
            "tasks": drained,
            "endpoints": len(WORKER_ENDPOINTS),
            "seconds": results["post_drain_seconds"],
            "cpu_seconds": {name: round(seconds, 3) for name, seconds in meter.used.items()},
        }
        progress("GET of a DONE task at concurrency 64: %d requests", args.post_requests)
        done_task = "/worker/post-c1-%06d" % 0
        results["get"] = await measured_loop(
            port, 64, args.post_requests, lambda n: ("GET", done_task, None), (200,), meter
        )
        progress("  %.0f GETs/s, p50 %.1f ms", results["get"]["rate"], results["get"]["p50_ms"])
        progress("end to end: %d tasks x %d endpoints at c=%d", args.tasks, len(WORKER_ENDPOINTS), args.e2e_concurrency)
        figures = await end_to_end(port, counter, args.tasks, WORKER_ENDPOINTS, args.e2e_concurrency, meter)
        results["end_to_end"] = figures
        progress(
            "  %.0f tasks/s (%.1f s; POSTs took %.1f s)", figures["rate"], figures["seconds"], figures["post_seconds"]
        )
        if args.history:
            results["history"] = await history_phase(config, port, counter, args, meter)
        if not args.skip_polling:
            results["polling"] = await polling_phase(port, args, meter)
        if not args.skip_fanout:
            results["fanout"] = await fan_out_phase(group, port, args.fanout_sizes, args.fanout_tasks)
        memory["api"]["after"] = rss_mb(api.pid)
        memory["manager"]["after"] = rss_mb(workers[0].pid)
        results["large_bodies"] = await large_bodies.phase(port, WORKER_ENDPOINTS, counter)
        memory["api"]["after_large"] = rss_mb(api.pid)
        memory["manager"]["after_large"] = rss_mb(workers[0].pid)
    finally:
        counter.close()


async def history_phase(
    config: Config, port: int, counter: TaskCounter, args: argparse.Namespace, meter: CpuMeter
) -> dict[str, Any]:
    """Fill the database with `--history` finished tasks, time history pages, then run the
    end-to-end phase again."""
    progress("history: filling the database with %d finished tasks", args.history)
    seconds = await asyncio.to_thread(fill_history, config.manager.db.uri, args.history)
    progress("  filled in %.0f s; history pages, %d GETs each", seconds, history.PAGE_GETS)
    pages = await measure_pages(port, args.history)
    progress("  end to end again")
    figures = await end_to_end(
        port, counter, args.tasks, WORKER_ENDPOINTS, args.e2e_concurrency, meter, prefix="e2e-history-"
    )
    progress("  %.0f tasks/s (%.1f s)", figures["rate"], figures["seconds"])
    return dict(figures, history=args.history, fill_seconds=round(seconds, 1), pages=pages)


async def history_pages_only(group: ProcessGroup, config: Config, args: argparse.Namespace, results: dict) -> None:
    """`--only-history-pages`: the API alone, the database filled, history pages timed."""
    port, tasks = config.api.port, args.history or 1_000_000
    progress("starting bin/api on port %d", port)
    api = group.api(port)
    await wait_healthy(port, api.alive)
    progress("history: filling the database with %d finished tasks", tasks)
    seconds = await asyncio.to_thread(fill_history, config.manager.db.uri, tasks)
    progress("  filled in %.0f s; history pages, %d GETs each", seconds, history.PAGE_GETS)
    pages = await measure_pages(port, tasks)
    results["history"] = {"history": tasks, "fill_seconds": round(seconds, 1), "pages": pages}


async def polling_phase(port: int, args: argparse.Namespace, meter: CpuMeter) -> dict[str, Any]:
    """The end-to-end run again, with a client that learns of DONE by polling each task."""
    progress(
        "end to end, polling client: %d tasks, GET each every %.0f ms, at most %d GETs in flight",
        args.tasks,
        1000 * args.poll_interval,
        args.poll_concurrency,
    )
    figures = await polling_end_to_end(
        port, args.tasks, WORKER_ENDPOINTS, args.e2e_concurrency, args.poll_concurrency, args.poll_interval, meter
    )
    progress("  %.0f tasks/s (%.1f s), %d GETs", figures["rate"], figures["seconds"], figures["gets"])
    return figures


async def fan_out_phase(group: ProcessGroup, port: int, sizes: list[int], tasks: int) -> dict[str, Any]:
    """For each size (smallest first, so no more queues are bound than the task names), start
    the managers still missing in parallel, wait until all consume, then time `tasks` tasks."""
    figures: dict[str, Any] = {}
    endpoints: list[str] = []
    for size in sizes:
        new = ["fan%03d" % number for number in range(len(endpoints) + 1, size + 1)]
        progress("fan-out to %d endpoints: starting %d more managers", size, len(new))
        managers = [(group.manager("fanout", endpoint), ".fanout." + endpoint) for endpoint in new]
        await asyncio.to_thread(wait_consuming, managers, 300)
        endpoints += new
        figures[str(size)] = await fan_out(port, endpoints, tasks)
        progress("  p50 %.0f ms, p99 %.0f ms", figures[str(size)]["p50_ms"], figures[str(size)]["p99_ms"])
    return figures


def main(argv: list[str] | None = None) -> int:
    """Run every phase, stop every process, print the table."""
    args = parse_args(argv)
    config = load_config(MODE)
    env = dict(os.environ, TASKER_MODE=MODE, PYTHONUNBUFFERED="1")
    # A Ctrl-C (even when started where SIGINT was ignored) or a SIGTERM still stops what we started.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupted)
    started = time.monotonic()
    results: dict[str, Any] = {"options": {k: v for k, v in vars(args).items() if k != "json"}}
    group = ProcessGroup(LOG_DIR, env)
    try:
        if args.only_history_pages:
            reset(env)
            asyncio.run(history_pages_only(group, config, args, results))
        else:
            run_phases(group, config, args, env, results)
    except KeyboardInterrupt:
        progress("interrupted: stopping every process the bench started")
        return 130
    finally:
        group.stop_all()
        progress("stopped the bench's processes (logs in %s)", LOG_DIR.relative_to(ROOT))
    results["duration_s"] = round(time.monotonic() - started, 1)
    results["comparison"] = comparison(results)
    results["notes"] = notes(results, args)
    print(format_table(results), end="")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


def run_phases(group: ProcessGroup, config: Config, args: argparse.Namespace, env: dict, results: dict) -> None:
    """Every phase the options leave in, in order."""
    if not (args.skip_tasker and args.skip_raw):
        reset(env)
    if not args.skip_raw:
        results["raw"] = measure_raw(config, args.raw_seconds)
    if not args.skip_workhorse:
        results["workhorse"] = measure_workhorse()
    if not args.skip_tasker:
        progress("HTTP client alone against a trivial server, c=64")
        results["client_ceiling"] = client_ceiling(group, max(10000, args.post_requests))
        asyncio.run(tasker_phases(group, config, args, results))
        group.stop_all()
        if not args.skip_cluster:
            results["cluster"] = cluster.phase(group, config, args, env, WORKER_ENDPOINTS)
    if not args.skip_celery:
        results["celery"] = _celery_peer().run(config, args, LOG_DIR)


def _celery_peer() -> Any:
    """bench.celery_peer, which needs Celery from the bench extra."""
    try:
        from bench import celery_peer
    except ModuleNotFoundError as exc:
        raise SystemExit("the Celery peer needs the bench extra: pip install -e '.[bench]' (or --skip-celery)") from exc
    return celery_peer


def _interrupted(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
