"""Runs and response states: every endpoint has its response row from the task's creation.

Revision ID: 0002
Revises: 0001

Each response gains `state`, `run`, `deadline` and `pgid`; existing rows get the state their
status and errnr say, and each endpoint of an existing task without a row gets one (`queued`
before the deadline was checked, `missing` after). The task's `receipt_checked` flag and its
index give way to an index on (state, deadline) of the responses.
"""

import datetime as dt
import json

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

BATCH = 1000
MISSING_ERRMSG = "not received before its delivery deadline"


def upgrade() -> None:
    with op.batch_alter_table("task_response") as batch:
        batch.add_column(sa.Column("state", sa.String(16), nullable=True))
        batch.add_column(sa.Column("run", sa.Integer, nullable=False, server_default="1"))
        batch.add_column(sa.Column("deadline", sa.DateTime, nullable=True))
        batch.add_column(sa.Column("pgid", sa.Integer, nullable=True))
    connection = op.get_bind()
    connection.execute(
        sa.text(
            "UPDATE task_response SET state = CASE"
            " WHEN status = 0 THEN 'received' WHEN errnr = 0 THEN 'succeeded' ELSE 'failed' END,"
            " deadline = (SELECT deadline FROM task WHERE task.id = task_response.task_id)"
        )
    )
    _add_missing_rows(connection)
    with op.batch_alter_table("task_response") as batch:
        batch.alter_column("state", existing_type=sa.String(16), nullable=False)
        batch.alter_column("deadline", existing_type=sa.DateTime, nullable=False)
        batch.create_index("ix_task_response_state_deadline", ["state", "deadline"])
    with op.batch_alter_table("task") as batch:
        batch.drop_index("ix_task_checked_deadline")
        batch.drop_column("receipt_checked")


def _add_missing_rows(connection) -> None:
    """A row for every endpoint of every task that has none: queued, or missing once checked."""
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None, microsecond=0)
    last_id = 0
    while True:
        tasks = connection.execute(
            sa.text(
                "SELECT id, endpoints, deadline, receipt_checked, status FROM task"
                " WHERE id > :last ORDER BY id LIMIT :n"
            ),
            {"last": last_id, "n": BATCH},
        ).all()
        if not tasks:
            return
        last_id = tasks[-1].id
        have = set(
            connection.execute(
                sa.text("SELECT task_id, endpoint FROM task_response WHERE task_id BETWEEN :a AND :b"),
                {"a": tasks[0].id, "b": last_id},
            ).all()
        )
        rows = []
        for task in tasks:
            missed = bool(task.receipt_checked) or task.status == "INCOMPLETE"
            for endpoint in json.loads(task.endpoints):
                if (task.id, endpoint) not in have:
                    rows.append(_row(task, endpoint, missed, now))
        if rows:
            connection.execute(
                sa.text(
                    "INSERT INTO task_response (task_id, endpoint, status, errnr, errmsg, payload, attempts,"
                    " start_time, last_modified_time, state, run, deadline)"
                    " VALUES (:task_id, :endpoint, :status, :errnr, :errmsg, NULL, 0, :now, :now, :state, 1, :deadline)"
                ),
                rows,
            )


def _row(task, endpoint: str, missed: bool, now: dt.datetime) -> dict:
    return {
        "task_id": task.id,
        "endpoint": endpoint,
        "status": 1 if missed else 0,
        "errnr": 1 if missed else 0,
        "errmsg": MISSING_ERRMSG if missed else None,
        "now": now,
        "state": "missing" if missed else "queued",
        "deadline": task.deadline,
    }


def downgrade() -> None:
    with op.batch_alter_table("task") as batch:
        batch.add_column(sa.Column("receipt_checked", sa.Boolean, nullable=False, server_default=sa.false()))
        batch.create_index("ix_task_checked_deadline", ["receipt_checked", "deadline"])
    op.execute("UPDATE task SET receipt_checked = 1 WHERE status <> 'CREATED' AND status <> 'SENT'")
    op.execute("DELETE FROM task_response WHERE state IN ('queued', 'missing')")
    with op.batch_alter_table("task_response") as batch:
        batch.drop_index("ix_task_response_state_deadline")
        for column in ("pgid", "deadline", "run", "state"):
            batch.drop_column(column)
