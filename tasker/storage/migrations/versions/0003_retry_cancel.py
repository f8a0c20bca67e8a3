"""Retry and cancel: earlier runs are kept, a cancel is recorded on its task.

Revision ID: 0003
Revises: 0002

A retry moves each selected endpoint's current run into `task_run` before its response row
starts the next run; `task.cancel_requested` records when a cancel was asked for.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

LongText = sa.Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")
Name = sa.String(50).with_variant(mysql.VARCHAR(50, collation="utf8mb4_bin"), "mysql", "mariadb")


def upgrade() -> None:
    with op.batch_alter_table("task") as batch:
        batch.add_column(sa.Column("cancel_requested", sa.DateTime, nullable=True))
    op.create_table(
        "task_run",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("task_id", sa.Integer, sa.ForeignKey("task.id", ondelete="CASCADE"), nullable=False),
        sa.Column("endpoint", Name, nullable=False),
        sa.Column("run", sa.Integer, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("status", sa.SmallInteger, nullable=False),
        sa.Column("errnr", sa.Integer, nullable=False),
        sa.Column("errmsg", sa.Text, nullable=True),
        sa.Column("payload", LongText, nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("start_time", sa.DateTime, nullable=False),
        sa.Column("last_modified_time", sa.DateTime, nullable=False),
        sa.Column("deadline", sa.DateTime, nullable=False),
        sa.UniqueConstraint("task_id", "endpoint", "run", name="uq_task_run_endpoint_run"),
    )


def downgrade() -> None:
    op.drop_table("task_run")
    with op.batch_alter_table("task") as batch:
        batch.drop_column("cancel_requested")
