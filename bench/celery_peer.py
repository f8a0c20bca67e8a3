"""The Celery peer of tasker's end-to-end row: the same executions (N tasks x 2 endpoints), a
no-op task, measured the same way (first send to last result stored).

One `celery worker -Q <queue> -c 2 -P prefork` per endpoint queue (`--celery-concurrency`
changes -c), acks late, JSON only, the local RabbitMQ (vhost `celery_bench`, reset each run) as
broker and the local MariaDB (database `celery_bench`, reset each run) as result backend through
SQLAlchemy. Each task is sent once to each endpoint queue by `concurrency` producer threads,
each with its own broker connection opened before the clock starts, with publisher confirms.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any

import celery
import pymysql
from celery.backends.database.models import Task as ResultRow
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url

from bench.celery_app import app, noop
from bench.phases import progress
from bench.processes import ROOT, CpuMeter, ProcessGroup, pids_named, process_tree, wait_until
from bench.raw_limits import mysql_args
from tasker.config import Config

VHOST = "celery_bench"
DATABASE = "celery_bench"
QUEUES = ["bench1", "bench2"]


def peer_urls(config: Config) -> tuple[str, str]:
    """Broker and result backend URLs: the bench's RabbitMQ and MariaDB, vhost and database
    `celery_bench`."""
    queue = config.manager.message_queue
    broker = "amqp://%s:%s@%s:%d/%s" % (
        urllib.parse.quote(queue.username, safe=""),
        urllib.parse.quote(queue.password, safe=""),
        queue.host,
        int(queue.port),
        VHOST,
    )
    database = make_url(config.manager.db.uri).set(drivername="mysql+pymysql", database=DATABASE)
    return broker, "db+" + database.render_as_string(hide_password=False)


def reset_vhost(config: Config) -> None:
    """Delete and recreate the peer's vhost, with every permission for the bench's user."""
    command = config.rabbitmq.rabbitmqctl
    user = config.manager.message_queue.username
    for args, tolerated in (
        (["delete_vhost", VHOST], ("not_found", "does not exist")),
        (["add_vhost", VHOST], ()),
        (["set_permissions", "-p", VHOST, user, ".*", ".*", ".*"], ()),
    ):
        done = subprocess.run([command, *args], capture_output=True, text=True, timeout=120)
        output = (done.stdout + done.stderr).strip()
        if done.returncode != 0 and not any(text in output for text in tolerated):
            raise RuntimeError("%s %s failed: %s" % (command, args[0], output[-500:]))


def reset_database(backend_url: str) -> None:
    """Drop and recreate the peer's database, then create Celery's result tables in it (before
    the workers start, so they do not race to create them)."""
    url = backend_url.removeprefix("db+")
    args = dict(mysql_args(url), database=None, autocommit=True)
    connection = pymysql.connect(**args)
    try:
        with connection.cursor() as cursor:
            cursor.execute("DROP DATABASE IF EXISTS `%s`" % DATABASE)
            cursor.execute("CREATE DATABASE `%s` CHARACTER SET utf8mb4" % DATABASE)
    finally:
        connection.close()
    engine = create_engine(url)
    try:
        ResultRow.metadata.create_all(engine)
    finally:
        engine.dispose()


class ResultCounter:
    """Counts stored results in the peer's `celery_taskmeta` table (a connection of its own)."""

    def __init__(self, backend_url: str) -> None:
        args = dict(mysql_args(backend_url.removeprefix("db+")), autocommit=True)
        self.connection = pymysql.connect(**args)

    def count(self) -> int:
        """Results stored as SUCCESS."""
        with self.connection.cursor() as cursor:
            cursor.execute("SELECT COUNT(*) FROM celery_taskmeta WHERE status = 'SUCCESS'")
            return int(cursor.fetchone()[0])

    def wait(self, total: int, timeout: float, interval: float = 0.02) -> float:
        """Poll until `total` results are stored; return the perf_counter time it was seen."""
        deadline = time.monotonic() + timeout
        while True:
            stored = self.count()
            now = time.perf_counter()
            if stored >= total:
                return now
            if time.monotonic() > deadline:
                raise TimeoutError("after %.0f s only %d of %d Celery results are stored" % (timeout, stored, total))
            time.sleep(interval)

    def close(self) -> None:
        """Close the connection."""
        self.connection.close()


def start_workers(group: ProcessGroup, processes: int) -> list:
    """One prefork worker of `processes` pool processes per queue; wait until each is ready."""
    workers = []
    for queue in QUEUES:
        args = [sys.executable, "-m", "celery", "-A", "bench.celery_app", "worker", "-Q", queue]
        args += ["-c", str(processes), "-P", "prefork", "-n", "%s@%%h" % queue, "-l", "INFO"]
        args += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
        workers.append(group.start("celery-worker-%s" % queue, args))
    for worker in workers:

        def ready(worker: Any = worker) -> bool:
            if not worker.alive():
                raise RuntimeError("%s exited:\n%s" % (worker.name, worker.log()[-2000:]))
            return " ready." in worker.log()

        wait_until(ready, 120, "%s to be ready" % worker.name, 0.1)
    return workers


class Senders:
    """`concurrency` producer threads, each holding one broker connection from Celery's pool.
    Each sends a warm-up task to every queue, then waits for `go`; then they share the numbers
    0..tasks-1, sending each to every queue, one confirmed publish after the other."""

    def __init__(self, task: Any, tasks: int, concurrency: int) -> None:
        self.task = task
        self.concurrency = concurrency
        self.ready = threading.Barrier(concurrency + 1, timeout=120)
        self.go = threading.Barrier(concurrency + 1, timeout=300)
        self._numbers = iter(range(tasks))
        self._lock = threading.Lock()
        self.failures: list[str] = []
        self.threads = [threading.Thread(target=self._run, args=(n,), daemon=True) for n in range(concurrency)]
        self.finished = 0.0

    def start(self) -> None:
        """Start the threads; return once every one has sent its warm-up tasks."""
        for thread in self.threads:
            thread.start()
        self.ready.wait()

    def join(self) -> float:
        """Wait for every thread; return the seconds from `go` to the last send."""
        for thread in self.threads:
            thread.join()
        return self.finished

    def _next(self) -> int | None:
        with self._lock:
            return next(self._numbers, None)

    def _run(self, index: int) -> None:
        try:
            with self.task.app.producer_pool.acquire(block=True) as producer:
                for queue in QUEUES:  # connects, and declares each queue on this connection
                    self.task.apply_async((-1,), queue=queue, producer=producer)
                self.ready.wait()
                self.go.wait()
                started = time.perf_counter()
                while (number := self._next()) is not None:
                    for queue in QUEUES:
                        try:
                            self.task.apply_async((number,), queue=queue, producer=producer)
                        except Exception as exc:  # counted and shown, like unexpected HTTP answers
                            self.failures.append("send %d to %s: %s" % (number, queue, exc))
                with self._lock:
                    self.finished = max(self.finished, time.perf_counter() - started)
        except threading.BrokenBarrierError:
            return
        except Exception:
            self.ready.abort()
            self.go.abort()
            raise


def measure(task: Any, counter: ResultCounter, args: argparse.Namespace, meter: CpuMeter) -> dict[str, Any]:
    """Warm up, then send `args.tasks` tasks to every queue and wait until every result is stored."""
    senders = Senders(task, args.tasks, args.e2e_concurrency)
    senders.start()
    baseline = args.e2e_concurrency * len(QUEUES)
    counter.wait(baseline, timeout=120)
    executions = args.tasks * len(QUEUES)
    meter.start()
    started = time.perf_counter()
    senders.go.wait()
    finished = counter.wait(baseline + executions, timeout=max(300.0, args.tasks / 5.0))
    send_seconds = senders.join()
    cpu = meter.stop()
    seconds = finished - started
    if senders.failures:
        progress("  %d sends failed, the first: %s", len(senders.failures), senders.failures[0])
    return {
        "tasks": args.tasks,
        "endpoints": len(QUEUES),
        "concurrency": args.e2e_concurrency,
        "worker_processes": args.celery_concurrency,
        "seconds": round(seconds, 3),
        "rate": round(args.tasks / seconds, 1),
        "send_seconds": round(send_seconds, 3),
        "send_failures": len(senders.failures),
        "cpu_percent": cpu,
        "cpu_seconds": {name: round(seconds, 3) for name, seconds in meter.used.items()},
    }


def run(config: Config, args: argparse.Namespace, log_dir: Path) -> dict[str, Any]:
    """Reset the peer's vhost and database, start its workers, measure, stop them (always)."""
    broker, backend = peer_urls(config)
    progress("Celery peer: resetting vhost %s and database %s", VHOST, DATABASE)
    reset_vhost(config)
    reset_database(backend)
    env = dict(os.environ, CELERY_BENCH_BROKER_URL=broker, CELERY_BENCH_RESULT_BACKEND=backend)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    app.conf.update(broker_url=broker, result_backend=backend, broker_pool_limit=args.e2e_concurrency)
    group = ProcessGroup(log_dir, env)
    counter = ResultCounter(backend)
    try:
        progress("Celery peer: starting %d prefork workers (-c %d each)", len(QUEUES), args.celery_concurrency)
        workers = start_workers(group, args.celery_concurrency)
        pids = [pid for worker in workers for pid in process_tree(worker.pid)]
        meter = CpuMeter(
            {"mariadb": pids_named("mariadbd", "mysqld"), "rabbitmq": pids_named("beam.smp"), "client": [os.getpid()]},
            trees={"workers": [worker.pid for worker in workers]},
        )
        progress("Celery peer: %d tasks x %d queues from %d threads", args.tasks, len(QUEUES), args.e2e_concurrency)
        figures = measure(noop, counter, args, meter)
        figures["pids"] = len(pids)
        figures["celery_version"] = celery.__version__
        progress(
            "  %.0f tasks/s (%.1f s; sends took %.1f s)", figures["rate"], figures["seconds"], figures["send_seconds"]
        )
        return figures
    finally:
        counter.close()
        app.pool.force_close_all()
        group.stop_all()
