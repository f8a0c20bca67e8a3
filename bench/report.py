"""The bench's one table: every figure, its ratio to the machine's raw limits, and the target
set for it; tasker's end-to-end figure next to the Celery peer's; the notes below it."""

from __future__ import annotations

import argparse
import os
from typing import Any

from bench.cluster import rows as cluster_rows
from tasker.storage.history import WINDOW as HISTORY_WINDOW

CPU_GROUPS = ("api", "managers", "mariadb", "rabbitmq", "client")
HEADER = ("measure", "value", "p50 ms", "p99 ms", "/raw pub", "/raw ins", "cpu% api/mgr/db/mq/cli", "target")


def _number(value: float) -> str:
    return "{:,.0f}".format(value) if value >= 100 else "{:,.1f}".format(value)


def _ratio(value: float, limit: float | None) -> str:
    return "%.2f" % (value / limit) if limit else ""


def _cpu(figures: dict[str, Any]) -> str:
    cpu = dict(figures.get("cpu_percent") or {})
    if "workers" in cpu:  # the Celery peer's workers stand in the managers' place
        cpu["managers"] = cpu.pop("workers")
    if not any(group in cpu for group in CPU_GROUPS[:-1]):
        return ""
    return "/".join("%.0f" % cpu[group] if group in cpu else "-" for group in CPU_GROUPS)


def _target(ok: bool, text: str) -> str:
    return "%s %s" % (text, "ok" if ok else "MISS")


def _rows(results: dict[str, Any]) -> list[tuple[str, ...]]:
    raw = results.get("raw", {})
    pub, ins = raw.get("publishes_per_s"), raw.get("inserts_per_s")
    rows: list[tuple[str, ...]] = []
    if raw:
        rows.append(("raw: confirmed publishes, 8 conn", _number(pub) + " msg/s", "", "", "", "", "", ""))
        rows.append(("raw: committed inserts, 8 conn", _number(ins) + " rows/s", "", "", "", "", "", ""))
    for key, label in (("client_ceiling", "HTTP client alone, c=64"), ("api_ceiling", "API GET 404 (no DB), c=64")):
        if key in results:
            f = results[key]
            rows.append(
                (label, _number(f["rate"]) + " req/s", "%.1f" % f["p50_ms"], "%.1f" % f["p99_ms"], "", "", _cpu(f), "")
            )
    if "idle" in results:
        rows.append(("idle, 2 s after start", "", "", "", "", "", _cpu(results["idle"]), ""))
    for level, f in results.get("post", {}).items():
        target = ""
        if level == "64":
            target = _target(f["rate"] >= 800, ">=800/s")
        elif level == "16":
            target = _target(f["p99_ms"] < 50, "p99<50ms")
        ratios = (_ratio(f["rate"], pub), _ratio(f["rate"], ins)) if level == "64" else ("", "")
        rows.append(
            (
                "POST c=%s" % level,
                _number(f["rate"]) + " tasks/s",
                "%.1f" % f["p50_ms"],
                "%.1f" % f["p99_ms"],
                *ratios,
                _cpu(f),
                target,
            )
        )
    if "get" in results:
        f = results["get"]
        label = "GET of a DONE task, c=64"
        rows.append(
            (label, _number(f["rate"]) + " req/s", "%.1f" % f["p50_ms"], "%.1f" % f["p99_ms"], "", "", _cpu(f), "")
        )
    if "large_bodies" in results:
        f = results["large_bodies"]
        label = "GET /health during %d POSTs of 1 MiB" % f["posts"]
        value = "%d/%d created" % (f["created"], f["posts"])
        target = _target(f["p99_ms"] < 50, "p99<50ms")
        rows.append((label, value, "%.1f" % f["p50_ms"], "%.1f" % f["p99_ms"], "", "", "", target))
    rows += _workhorse_rows(results)
    rows += _end_to_end_rows(results, pub, ins)
    rows += _history_page_rows(results)
    for size, f in results.get("fanout", {}).items():
        target = _target(f["p50_ms"] < 1000 and f["p99_ms"] < 2000, "p50<1s p99<2s") if size == "50" else ""
        rows.append(
            (
                "fan-out to %s endpoints, POST to DONE" % size,
                "%d tasks" % f["tasks"],
                _number(f["p50_ms"]),
                _number(f["p99_ms"]),
                "",
                "",
                "",
                target,
            )
        )
    memory = results.get("memory_mb", {})
    for who, limit in (("api", 80), ("manager", 60)):
        if who in memory:
            m = memory[who]
            name = "API" if who == "api" else "one manager"
            rows.append(("RSS %s, idle" % name, "%.1f MB" % m["idle"], "", "", "", "", "", ""))
            if "after" in m:
                target = _target(m["after"] < limit, "<%d MB" % limit)
                rows.append(("RSS %s, after the run" % name, "%.1f MB" % m["after"], "", "", "", "", "", target))
            if "after_large" in m:
                rows.append(("RSS %s, after 16 POSTs of 1 MiB" % name, "%.1f MB" % m["after_large"], *[""] * 6))
    return rows


def _workhorse_rows(results: dict[str, Any]) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for mode, label in (("persistent", "a persistent child"), ("fresh", "a fresh child each")):
        f = results.get("workhorse", {}).get(mode)
        if f:
            cost = "mgr %.3f + child %.3f ms/run" % (f["manager_cpu_ms"], f["children_cpu_ms"])
            rate = _number(f["runs_per_s"]) + " runs/s"
            rows.append(("work horse, no-op runs in %s" % label, rate, *[""] * 5, cost))
    return rows


def _end_to_end_rows(results: dict[str, Any], pub: float | None, ins: float | None) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    if "end_to_end" in results:
        f = results["end_to_end"]
        rows.append(
            (
                "end to end, %d tasks x %d endpoints" % (f["tasks"], f["endpoints"]),
                _number(f["rate"]) + " tasks/s",
                "",
                "",
                _ratio(f["rate"], pub),
                _ratio(f["rate"], ins),
                _cpu(f),
                _target(f["rate"] >= 300, ">=300/s"),
            )
        )
    if "rate" in results.get("history", {}):
        f = results["history"]
        kept = f["rate"] / results["end_to_end"]["rate"] if "end_to_end" in results else 0.0
        rows.append(
            (
                "  same, %s finished tasks in the database" % _number(f["history"]),
                _number(f["rate"]) + " tasks/s",
                "",
                "",
                "",
                "",
                _cpu(f),
                _target(kept >= 0.9, "drop <=10%% (%.2f)" % kept),
            )
        )
    if "polling" in results:
        f = results["polling"]
        label = "  same, client polls each task (GET/%d ms, %d conn)" % (f["poll_interval_ms"], f["poll_concurrency"])
        rows.append(
            (label, _number(f["rate"]) + " tasks/s", _number(f["p50_ms"]), _number(f["p99_ms"]), "", "", _cpu(f), "")
        )
    rows += cluster_rows(results, _cpu, _number)
    if "celery" in results:
        f = results["celery"]
        rows.append(
            (
                "Celery, %d tasks x %d queues, -c %d each" % (f["tasks"], f["endpoints"], f["worker_processes"]),
                _number(f["rate"]) + " tasks/s",
                "",
                "",
                _ratio(f["rate"], pub),
                _ratio(f["rate"], ins),
                _cpu(f),
                "",
            )
        )
    compared = comparison(results)
    if "tasker_over_celery" in compared:
        rows.append(("ratio tasker/Celery, end to end", "%.2f" % compared["tasker_over_celery"], *[""] * 6))
    if "drain" in results and not results["options"].get("managers_working"):
        f = results["drain"]
        executions = f["tasks"] * f["endpoints"]
        cpu = 1000.0 * f["cpu_seconds"].get("managers", 0.0) / executions
        rows.append(
            (
                "CPU per execution, managers draining %s queued tasks" % _number(f["tasks"]),
                "%.2f ms" % cpu,
                *[""] * 5,
                _target(cpu <= 0.2, "<=0.2 ms"),
            )
        )
    for who, label in (
        ("tasker", "CPU per execution, tasker managers"),
        ("celery", "CPU per execution, Celery workers"),
        ("tasker", "CPU per execution, tasker api+mgr+db+mq"),
        ("celery", "CPU per execution, Celery wrk+cli+db+mq"),
    ):
        if who in compared:
            key = "system_cpu_ms" if "+" in label else "worker_cpu_ms"
            rows.append((label, "%.2f ms" % compared[who][key], *[""] * 6))
    return rows


def _history_page_rows(results: dict[str, Any]) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for label, f in results.get("history", {}).get("pages", {}).items():
        rows.append(
            (
                "history page, %s" % label,
                "%d tasks" % f["tasks"],
                "%.1f" % f["p50_ms"],
                "%.1f" % f["p99_ms"],
                "",
                "",
                "",
                _target(f["p99_ms"] < 50 and not f["failures"], "p99<50ms"),
            )
        )
    return rows


def _per_execution(figures: dict[str, Any], groups: tuple[str, ...]) -> float:
    executions = figures["tasks"] * figures["endpoints"]
    return round(1000.0 * sum(figures["cpu_seconds"].get(group, 0.0) for group in groups) / executions, 3)


def comparison(results: dict[str, Any]) -> dict[str, Any]:
    """tasker's end-to-end figures next to the Celery peer's: tasks/s, their ratio, and CPU ms
    per execution (one task at one endpoint) of the workers alone and of everything doing the
    work (tasker: API, managers, MariaDB, RabbitMQ; Celery: workers, the client that publishes,
    MariaDB, RabbitMQ)."""
    found: dict[str, Any] = {}
    sides = (
        ("tasker", "end_to_end", "managers", ("api", "managers", "mariadb", "rabbitmq")),
        ("celery", "celery", "workers", ("workers", "client", "mariadb", "rabbitmq")),
    )
    for name, key, workers, system in sides:
        figures = results.get(key)
        if figures and "cpu_seconds" in figures:
            found[name] = {
                "tasks_per_s": figures["rate"],
                "executions": figures["tasks"] * figures["endpoints"],
                "worker_cpu_ms": _per_execution(figures, (workers,)),
                "system_cpu_ms": _per_execution(figures, system),
            }
    if "tasker" in found and "celery" in found:
        found["tasker_over_celery"] = round(found["tasker"]["tasks_per_s"] / found["celery"]["tasks_per_s"], 2)
    if "end_to_end" in results and "polling" in results:
        found["polling_over_end_to_end"] = round(results["polling"]["rate"] / results["end_to_end"]["rate"], 2)
    return found


def format_table(results: dict[str, Any]) -> str:
    """The table as aligned plain text, with its notes below."""
    rows = [HEADER, *_rows(results)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADER))]
    numeric = {1, 2, 3, 4, 5}

    def line(row: tuple[str, ...]) -> str:
        cells = [cell.rjust(widths[i]) if i in numeric else cell.ljust(widths[i]) for i, cell in enumerate(row)]
        return "  ".join(cells).rstrip()

    rule = "  ".join("-" * width for width in widths)
    lines = [line(rows[0]), rule, *(line(row) for row in rows[1:])]
    lines += ["", *("note: " + note for note in results.get("notes", []))]
    return "\n".join(lines).rstrip() + "\n"


def notes(results: dict[str, Any], args: argparse.Namespace) -> list[str]:
    """What a reader needs to read the table right."""
    found = [
        "cpu%% is of one core (this machine has %d); mgr sums both worker managers, db/mq are the"
        " whole servers (other users' load included), cli is this process" % os.cpu_count(),
        "raw limits: 8 processes, one connection each, one publish (waiting for its confirm) or one"
        " insert+commit in flight per connection, %.0f s each; /raw = tasker figure / raw limit" % args.raw_seconds,
    ]
    if "post" not in results:
        pass
    elif args.managers_working:
        found.append("POST rows: the managers were working on the same cores while the API was measured")
    else:
        found.append(
            "POST rows: the managers are paused (SIGSTOP) while the API is measured, as if they ran on other"
            " hosts; their tasks wait in the queues and are drained afterwards. The end-to-end row has all of it"
            " working (--managers-working: POST rows with the managers working too)"
        )
    if "end_to_end" in results:
        e2e = results["end_to_end"]
        found.append(
            "end to end: tasks/s counts tasks, each performed by both endpoints (executions/s are twice it);"
            " timed from the first POST to the last task DONE in the database (counted every 20 ms);"
            " POSTs at c=%d took %.1f s of the %.1f s; the POST phase's %d tasks were drained"
            " %.1f s after its last POST"
            % (
                args.e2e_concurrency,
                e2e["post_seconds"],
                e2e["seconds"],
                3 * args.post_requests,
                results.get("post_drain_seconds", 0),
            )
        )
    found += _comparison_notes(results, args)
    if "pages" in results.get("history", {}):
        found.append(
            "history pages: GET /worker?<filter> (limit 50), %d times one after the other, on %s finished tasks;"
            " tasks = what the page held: a filter few of the newest tasks meet reads at most %s of them per"
            " page, so its page may hold fewer than 50 with `next` going on"
            % (
                next(iter(results["history"]["pages"].values()))["gets"],
                _number(results["history"]["history"]),
                _number(HISTORY_WINDOW),
            )
        )
    if "client_ceiling" in results:
        cpu = results["client_ceiling"]["cpu_percent"]
        found.append(
            "HTTP client alone: client cpu %.0f%%, trivial server (another process) cpu %.0f%%"
            % (cpu["client"], cpu["server"])
        )
    ceiling = results.get("client_ceiling", {}).get("rate", 0)
    post64 = results.get("post", {}).get("64", {}).get("rate", 0)
    if ceiling and post64 > 0.5 * ceiling:
        found.append(
            "POST c=64 reached over half the client's own ceiling (%.0f req/s): the client may limit it" % ceiling
        )
    failures = sum(f.get("failures", 0) for f in results.get("post", {}).values())
    if failures:
        found.append("%d POSTs got an unexpected answer (see the progress lines)" % failures)
    found.append("took %.0f s in all" % results.get("duration_s", 0))
    return found


def _comparison_notes(results: dict[str, Any], args: argparse.Namespace) -> list[str]:
    found = []
    compared = comparison(results)
    if "polling" in results:
        f = results["polling"]
        found.append(
            "polling client: the same POSTs at c=%d; after its 201 each task is GET every %d ms (at most %d GETs"
            " in flight, keep-alive) until DONE; timed to the last DONE the client saw; p50/p99 = 201 to DONE"
            " seen; %d GETs (%.1f a task, %.0f/s), %.2f x the end-to-end row's rate"
            % (
                args.e2e_concurrency,
                f["poll_interval_ms"],
                f["poll_concurrency"],
                f["gets"],
                f["gets"] / f["tasks"],
                f["gets_per_s"],
                compared.get("polling_over_end_to_end", 0),
            )
        )
        if f["get_failures"] or f["post_failures"]:
            found.append("polling client: %d POSTs and %d GETs failed" % (f["post_failures"], f["get_failures"]))
    if "celery" in results:
        f = results["celery"]
        found.append(
            "Celery peer (Celery %s): per queue one `celery worker -Q <queue> -c %d -P prefork -l INFO` (no"
            " gossip, mingle, heartbeat), task_acks_late, prefetch multiplier 4 (the default), JSON only, publisher"
            " confirms; broker the same RabbitMQ (vhost celery_bench), results in the same MariaDB through"
            " SQLAlchemy (database celery_bench); a no-op task. %d producer threads of this process, one broker"
            " connection each, send each task to both queues; timed from the first send to the last of the %d"
            " results stored (counted every 20 ms); sends took %.1f s of the %.1f s"
            % (
                f.get("celery_version", "?"),
                f["worker_processes"],
                f["concurrency"],
                f["tasks"] * f["endpoints"],
                f["send_seconds"],
                f["seconds"],
            )
        )
        found.append(
            "Celery row's cpu%%: mgr is the %d worker processes (2 main, their pools), cli is this process, whose"
            " producer threads publish as tasker's API does; CPU per execution = CPU time of the run / (tasks x 2)"
            % f["pids"]
        )
        if f["send_failures"]:
            found.append("Celery peer: %d sends failed (see the progress lines)" % f["send_failures"])
    if args.skip_tasker:
        found.append("tasker's API and managers were not run (--skip-tasker)")
    return found
