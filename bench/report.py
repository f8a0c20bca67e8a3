"""The bench's one table: every figure, its ratio to the machine's raw limits, and the target
issue 4 sets for it."""

from __future__ import annotations

from typing import Any

CPU_GROUPS = ("api", "managers", "mariadb", "rabbitmq", "client")
HEADER = ("measure", "value", "p50 ms", "p99 ms", "/raw pub", "/raw ins", "cpu% api/mgr/db/mq/cli", "target")


def _number(value: float) -> str:
    return "{:,.0f}".format(value) if value >= 100 else "{:,.1f}".format(value)


def _ratio(value: float, limit: float | None) -> str:
    return "%.2f" % (value / limit) if limit else ""


def _cpu(figures: dict[str, Any]) -> str:
    cpu = figures.get("cpu_percent")
    if not cpu or any(group not in cpu for group in CPU_GROUPS):
        return ""
    return "/".join("%.0f" % cpu[group] for group in CPU_GROUPS)


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
    return rows


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
