"""`--history N`: fill the bench database with N finished tasks (two succeeded responses each),
fast, with MariaDB's sequence engine, so the end-to-end run can be measured again on a
database that holds a long history."""

from __future__ import annotations

import time

import pymysql

from bench.phases import progress
from bench.raw_limits import mysql_args

CHUNK = 100_000
ENDPOINTS = ("bench1", "bench2")


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
    # Task `seq` was created (total - seq) * 2.5 s ago: 1,000,000 tasks span about 30 days.
    cursor.execute("SELECT COALESCE(MAX(id), 0) FROM task")
    (before,) = cursor.fetchone()
    cursor.execute(
        "INSERT INTO task (identifier, type, payload, endpoints, status, start_time, last_modified_time,"
        " deadline, claim_until)"
        " SELECT CONCAT('history-', seq), 'worker', '\"\"', %s, 'DONE', at, at + INTERVAL 1 SECOND,"
        " at + INTERVAL 30 SECOND, NULL"
        " FROM (SELECT seq, UTC_TIMESTAMP() - INTERVAL ((%s - seq) * 2.5) SECOND AS at"
        " FROM seq_{first}_to_{last}) AS history".format(first=first, last=last),
        ('["%s"]' % '", "'.join(ENDPOINTS), total),
    )
    for endpoint in ENDPOINTS:
        cursor.execute(
            "INSERT INTO task_response (task_id, endpoint, status, errnr, errmsg, payload, attempts, start_time,"
            " last_modified_time, state, run, deadline, pgid)"
            " SELECT id, %s, 1, 0, NULL, 'null', 1, start_time, last_modified_time, 'succeeded', 1, deadline, NULL"
            " FROM task WHERE id > %s",
            (endpoint, before),
        )
