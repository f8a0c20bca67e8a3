"""The cluster row of the bench (left out by `--skip-cluster`): the end-to-end run again, on scripts/cluster's
three RabbitMQ nodes with quorum queues, through HAProxy in front of two bin/api processes.

Same tasks, endpoints, concurrency and handler as the single-node row, in the same bench
run: the managers list the three nodes (each in another order) in `hosts`, the POSTs go to
HAProxy's port, and the clock runs from the first POST to the last task DONE. The cluster is
started if it is not running, and stopped again afterwards if the bench started it.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import subprocess
from typing import Any

from bench.phases import TaskCounter, end_to_end, progress, wait_healthy
from bench.processes import BIN, ROOT, CpuMeter, Process, ProcessGroup, initialize, pids_named, wait_consuming
from tasker.config import Config

log = logging.getLogger(__name__)

SCRIPT = ROOT / "scripts" / "cluster"
NODE_PORTS = (5681, 5682, 5683)
API_PORTS = (19191, 19192)
HAPROXY_PORT = 19200
VHOST = "tasker_bench_cluster"
PREFIX = "cluster-e2e-"


def hosts(first: int) -> str:
    """The `hosts` list of the three nodes, starting with the `first` (0-based)."""
    ports = NODE_PORTS[first:] + NODE_PORTS[:first]
    return ",".join("127.0.0.1:%d" % port for port in ports)


def _script(*args: str) -> str:
    done = subprocess.run([str(SCRIPT), *args], cwd=ROOT, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError("scripts/cluster %s failed:\n%s%s" % (" ".join(args), done.stdout, done.stderr))
    return done.stdout


def _environment(env: dict[str, str]) -> dict[str, str]:
    return dict(
        env,
        TASKER_BENCH_RABBITMQ_HOSTS=hosts(0),
        TASKER_BENCH_QUEUE_TYPE="quorum",
        TASKER_BENCH_VHOST=VHOST,
        # bin/initialize -r runs `rabbitmqctl`: scripts/cluster's wrapper there reaches the cluster.
        PATH="%s:%s" % (ROOT / "var" / "cluster" / "bin", env.get("PATH", "")),
    )


def phase(
    group: ProcessGroup, config: Config, args: argparse.Namespace, env: dict[str, str], endpoints: list[str]
) -> dict[str, Any]:
    """Start the cluster (if needed), two APIs and a manager per endpoint; run end to end; stop them."""
    was_running = subprocess.run([str(SCRIPT), "status"], cwd=ROOT, capture_output=True).returncode == 0
    progress("cluster: starting three RabbitMQ nodes and HAProxy (scripts/cluster start)")
    _script("start")
    try:
        return _measure(group, config, args, _environment(env), endpoints)
    finally:
        group.stop_all()
        if not was_running:
            _script("stop")
            progress("cluster: stopped (scripts/cluster stop)")


def _measure(
    group: ProcessGroup, config: Config, args: argparse.Namespace, env: dict[str, str], endpoints: list[str]
) -> dict[str, Any]:
    initialize(env, "-r", "--reset")  # on the cluster: its vhost, users and policies
    apis = [_start(group, "cluster-api-%d" % port, ["api", "--port", str(port)], env) for port in API_PORTS]
    managers = []
    for number, endpoint in enumerate(endpoints):
        # Each manager tries the nodes in another order, so connections spread over the cluster.
        its_env = dict(env, TASKER_BENCH_RABBITMQ_HOSTS=hosts(number % len(NODE_PORTS)))
        args_ = ["manager", "--endpoint", endpoint, "--tasktype", "worker"]
        managers.append(_start(group, "cluster-manager-worker-%s" % endpoint, args_, its_env))
    progress("cluster: %d APIs behind HAProxy on port %d, %d managers", len(apis), HAPROXY_PORT, len(managers))

    async def run() -> dict[str, Any]:
        for port, api in zip(API_PORTS, apis, strict=True):
            await wait_healthy(port, api.alive)
        await wait_healthy(HAPROXY_PORT, lambda: True)
        suffixes = [".worker." + endpoint for endpoint in endpoints]
        await asyncio.to_thread(wait_consuming, list(zip(managers, suffixes, strict=True)), 120)
        nodes = [int(pid) for pid in (_script("pid", str(n)).strip() for n in (1, 2, 3)) if pid]
        meter = CpuMeter(
            {"mariadb": pids_named("mariadbd", "mysqld"), "rabbitmq": nodes, "client": [os.getpid()]},
            trees={"api": [api.pid for api in apis], "managers": [manager.pid for manager in managers]},
        )
        counter = TaskCounter(config.manager.db.uri)
        try:
            progress(
                "cluster: end to end, %d tasks x %d endpoints at c=%d", args.tasks, len(endpoints), args.e2e_concurrency
            )
            figures = await end_to_end(
                HAPROXY_PORT, counter, args.tasks, endpoints, args.e2e_concurrency, meter, prefix=PREFIX
            )
        finally:
            counter.close()
        progress("  %.0f tasks/s (%.1f s)", figures["rate"], figures["seconds"])
        return dict(figures, nodes=len(NODE_PORTS), apis=len(apis))

    return asyncio.run(run())


def _start(group: ProcessGroup, name: str, command: list[str], env: dict[str, str]) -> Process:
    process = Process(name, [str(BIN / command[0]), "--mode", "bench", *command[1:]], env, group.log_dir)
    group.processes.append(process)
    return process


def rows(results: dict[str, Any], cpu: Any, number: Any) -> list[tuple[str, ...]]:
    """The table's cluster row, next to the single-node end-to-end row of the same run."""
    if "cluster" not in results:
        return []
    f = results["cluster"]
    single = results.get("end_to_end", {}).get("rate")
    versus = "%.2f x one node" % (f["rate"] / single) if single else ""
    label = "  same, %d RabbitMQ nodes (quorum), %d APIs, HAProxy" % (f["nodes"], f["apis"])
    return [(label, number(f["rate"]) + " tasks/s", "", "", "", "", cpu(f), versus)]
