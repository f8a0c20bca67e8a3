"""The machine's raw limits for tasker's work, measured with the bare client libraries:
confirmed persistent publishes to a fanout exchange with two durable queues (what one POST
asks of RabbitMQ), and committed single-row inserts (the unit of what tasker asks of MariaDB).

Each runs `connections` worker processes (not threads: the GIL would measure Python) that
connect first, start together and count what they finished within `seconds`.
"""

from __future__ import annotations

import multiprocessing
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Callable

import pika
import pymysql
from sqlalchemy.engine import make_url

from tasker.config import MessageQueueConfig

EXCHANGE = "bench.raw"
QUEUES = ("bench.raw.q1", "bench.raw.q2")
TABLE = "bench_raw_insert"
# About the size of a message tasker publishes for a task to two endpoints.
BODY = b'{"id": 1, "identifier": "raw-0123456789abcdef", "type": "worker", "endpoints": ["bench1", "bench2"]}'


def _parameters(settings: MessageQueueConfig) -> pika.ConnectionParameters:
    return pika.ConnectionParameters(
        host=settings.host,
        port=settings.port,
        virtual_host=settings.virtual_host,
        credentials=pika.PlainCredentials(settings.username, settings.password),
    )


def mysql_args(uri: str) -> dict[str, Any]:
    url = make_url(uri)
    return {
        "host": url.host or "127.0.0.1",
        "port": url.port or 3306,
        "user": url.username or "root",
        "password": url.password or "",
        "database": url.database,
        "autocommit": False,
    }


def _run_workers(worker: Callable[..., int], args: tuple, connections: int, seconds: float) -> float:
    """Run `worker(*args, start_at, stop_at)` in `connections` processes; return the total rate."""
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(connections, mp_context=context) as pool:
        start_at = time.time() + 1.5  # time for every worker to connect first
        stop_at = start_at + seconds
        futures = [pool.submit(worker, *args, start_at, stop_at) for _ in range(connections)]
        return sum(future.result() for future in futures) / seconds


def _publish_worker(settings: MessageQueueConfig, start_at: float, stop_at: float) -> int:
    connection = pika.BlockingConnection(_parameters(settings))
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        properties = pika.BasicProperties(delivery_mode=2, content_type="application/json")
        time.sleep(max(0.0, start_at - time.time()))
        done = 0
        while time.time() < stop_at:
            # Returns once the broker confirmed it (raises if it did not).
            channel.basic_publish(EXCHANGE, "", BODY, properties, mandatory=True)
            done += 1
        return done
    finally:
        connection.close()


def confirmed_publishes(settings: MessageQueueConfig, connections: int = 8, seconds: float = 5.0) -> float:
    """Confirmed persistent publishes per second to a fanout exchange with two bound durable
    queues, one publish in flight per connection; deletes what it declares."""
    connection = pika.BlockingConnection(_parameters(settings))
    channel = connection.channel()
    try:
        channel.exchange_declare(EXCHANGE, "fanout", durable=True)
        for queue in QUEUES:
            channel.queue_declare(queue, durable=True)
            channel.queue_bind(queue, EXCHANGE)
        return _run_workers(_publish_worker, (settings,), connections, seconds)
    finally:
        for queue in QUEUES:
            channel.queue_delete(queue)
        channel.exchange_delete(EXCHANGE)
        connection.close()


def _insert_worker(uri: str, start_at: float, stop_at: float) -> int:
    connection = pymysql.connect(**mysql_args(uri))
    try:
        tag = uuid.uuid4().hex
        with connection.cursor() as cursor:
            time.sleep(max(0.0, start_at - time.time()))
            done = 0
            while time.time() < stop_at:
                cursor.execute("INSERT INTO %s (tag, payload) VALUES (%%s, %%s)" % TABLE, (tag, BODY))
                connection.commit()
                done += 1
        return done
    finally:
        connection.close()


def committed_inserts(uri: str, connections: int = 8, seconds: float = 5.0) -> float:
    """Committed single-row inserts per second into a scratch InnoDB table; drops it after."""
    connection = pymysql.connect(**mysql_args(uri))
    try:
        with connection.cursor() as cursor:
            cursor.execute("DROP TABLE IF EXISTS %s" % TABLE)
            cursor.execute(
                "CREATE TABLE %s (id INT AUTO_INCREMENT PRIMARY KEY, tag VARCHAR(32), payload TEXT) ENGINE=InnoDB"
                % TABLE
            )
        return _run_workers(_insert_worker, (uri,), connections, seconds)
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DROP TABLE IF EXISTS %s" % TABLE)
        connection.close()
