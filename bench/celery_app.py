"""The bench's Celery peer: an app with one no-op task, run by `celery -A bench.celery_app worker`.

Broker and result backend come from CELERY_BENCH_BROKER_URL and CELERY_BENCH_RESULT_BACKEND
(bench/celery_peer.py sets both, for the workers and for itself); the defaults are the local
RabbitMQ's vhost `celery_bench` and the local MariaDB's database `celery_bench`. Messages and
results are JSON only.
"""

from __future__ import annotations

import os

from celery import Celery

BROKER_URL = os.environ.get("CELERY_BENCH_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672/celery_bench")
RESULT_BACKEND = os.environ.get("CELERY_BENCH_RESULT_BACKEND", "db+mysql+pymysql://root@127.0.0.1:3306/celery_bench")

app = Celery("bench", broker=BROKER_URL, backend=RESULT_BACKEND)
app.conf.update(
    task_serializer="json",
    accept_content=["json"],
    result_serializer="json",
    result_accept_content=["json"],
    # A message is acknowledged once the task ran and its result is stored, as tasker's managers do.
    task_acks_late=True,
    # Celery's default, written out: each worker process may hold 4 unacknowledged messages.
    worker_prefetch_multiplier=4,
    # Publisher confirms, as tasker's API waits for before it answers (Celery's default is off).
    broker_transport_options={"confirm_publish": True},
    broker_connection_retry_on_startup=True,
)


@app.task(name="bench.noop")
def noop(number: int) -> dict[str, int]:
    """Answer a small payload without doing anything (like bench/handlers.py for tasker)."""
    return {"ok": 1}
