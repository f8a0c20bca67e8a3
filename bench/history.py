"""`--history N`: fill the bench database with N finished tasks, fast, with MariaDB's sequence
engine, so the end-to-end run can be measured again on a database that holds a long history,
and `GET /worker` (the history) can be timed on it.

Each task names bench1 and bench2 and both succeeded, but for a few, so that the history's
filters have something to find: 1 in 100 failed on bench2, 1 in 1,000 is INCOMPLETE (bench2
`missing`), 1 in 500 names bench3 too."""

from __future__ import annotations

import datetime as dt
import json
import time
import urllib.parse
from typing import Any

import pymysql

from bench.http_client import Connection, closed_loop, percentile
from bench.phases import progress
from bench.raw_limits import mysql_args

CHUNK = 100_000
ENDPOINTS = ("bench1", "bench2")
SPACING = 2.5  # seconds between two tasks of the history
PAGE_GETS = 300  # GETs of each history page, one after the other


def fill_history(uri: str, tasks: int) -> float:
    """Insert `tasks` DONE worker tasks spread over the last 30 days; return the seconds it took."""
    started = time.perf_counter()
    connection = pymysql.connect(**dict(mysql_args(uri), autocommit=True))
    try:
        with connection.cursor() as cursor:
            for first in range(1, tasks + 1, CHUNK):
                last = min(tasks, first + CHUNK - 1)
                _insert_chunk(cursor, first, last, tasks)
                progress("  history: %d of %d tasks", last, tasks)
    finally:
        connection.close()
    return time.perf_counter() - started


def _insert_chunk(cursor, first: int, last: int, total: int) -> None:
    # Task `seq` was created (total - seq) * SPACING s ago: 1,000,000 tasks span about 30 days.
    cursor.execute("SELECT COALESCE(MAX(id), 0) FROM task")
    (before,) = cursor.fetchone()
    cursor.execute(
        "INSERT INTO task (identifier, type, payload, endpoints, status, start_time, last_modified_time,"
        " deadline, claim_until)"
        " SELECT CONCAT('history-', seq), 'worker', '\"\"',"
        " IF(seq %% 500 = 7, %s, %s), IF(seq %% 1000 = 500, 'INCOMPLETE', 'DONE'),"
        " at, at + INTERVAL 1 SECOND, at + INTERVAL 30 SECOND, NULL"
        " FROM (SELECT seq, UTC_TIMESTAMP() - INTERVAL ((%s - seq) * {spacing}) SECOND AS at"
        " FROM seq_{first}_to_{last}) AS history".format(first=first, last=last, spacing=SPACING),
        (_names(ENDPOINTS + ("bench3",)), _names(ENDPOINTS), total),
    )
    # The task's seq is its identifier's number: which state bench2's response is in, whether bench3 has one.
    seq = "CAST(SUBSTRING(identifier, 9) AS UNSIGNED)"
    states = {
        "bench1": "'succeeded'",
        "bench2": "CASE WHEN {seq} %% 1000 = 500 THEN 'missing' WHEN {seq} %% 100 = 0 THEN 'failed'"
        " ELSE 'succeeded' END".format(seq=seq),
        "bench3": "'succeeded'",
    }
    for endpoint, state in states.items():
        only = " AND {seq} %% 500 = 7".format(seq=seq) if endpoint == "bench3" else ""
        cursor.execute(
            "INSERT INTO task_response (task_id, endpoint, status, errnr, errmsg, payload, attempts, start_time,"
            " last_modified_time, state, run, deadline, pgid)"
            " SELECT id, %s, 1, IF(state = 'succeeded', 0, 1), NULL, 'null', 1, start_time, last_modified_time,"
            " state, 1, deadline, NULL"
            " FROM (SELECT *, {state} AS state FROM task WHERE id > %s{only}) AS chunk".format(state=state, only=only),
            (endpoint, before),
        )


def _names(endpoints: tuple[str, ...]) -> str:
    return '["%s"]' % '", "'.join(endpoints)


def page_queries(tasks: int) -> dict[str, dict[str, str]]:
    """The history pages the bench times, by row label, on a history of `tasks` tasks: one
    filter each (an hour of start times for `since`, a third of the history back)."""
    since = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) - dt.timedelta(seconds=tasks * SPACING / 3)
    hour = {"since": since.strftime("%Y-%m-%d %H:%M:%S")}
    hour["until"] = (since + dt.timedelta(hours=1)).strftime("%Y-%m-%d %H:%M:%S")
    return {
        "no filter": {},
        "status (1 in 1,000)": {"status": "INCOMPLETE"},
        "endpoint (1 in 500)": {"endpoint": "bench3"},
        "state (1 in 100)": {"state": "failed"},
        "identifier prefix": {"identifier": "history-12345"},
        "since, an hour": hour,
    }


async def measure_pages(port: int, tasks: int, gets: int = PAGE_GETS) -> dict[str, Any]:
    """For each history page of `page_queries`: `gets` GETs one after the other, their p50 and
    p99, and how many tasks the page holds."""
    figures: dict[str, Any] = {}
    for label, query in page_queries(tasks).items():
        path = "/worker?" + urllib.parse.urlencode(query)
        connection = Connection(port)
        try:
            status, body = await connection.request("GET", path)
        finally:
            await connection.close()
        if status != 200:
            raise RuntimeError("GET %s answered %d: %s" % (path, status, body[:300]))
        result = await closed_loop(port, 1, gets, lambda n, path=path: ("GET", path, None), (200,))
        figures[label] = {
            "path": path,
            "gets": gets,
            "tasks": len(json.loads(body)["tasks"]),
            "p50_ms": round(1000 * percentile(result.latencies, 0.50), 2),
            "p99_ms": round(1000 * percentile(result.latencies, 0.99), 2),
            "failures": result.failures,
        }
        progress(
            "  history page, %s: p50 %.1f ms, p99 %.1f ms", label, figures[label]["p50_ms"], figures[label]["p99_ms"]
        )
    return figures
