"""Heartbeats: what a registered endpoint's manager last said of itself.

Revision ID: 0007
Revises: 0006

Each registration gains the host, process id and tasker version of its manager, the
identifier of the task it runs (None when idle), the messages waiting in its queue, and the
interval it promised to beat at; `last_seen_time` is the time of its latest heartbeat.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

Name = sa.String(50).with_variant(mysql.VARCHAR(50, collation="utf8mb4_bin"), "mysql", "mariadb")


def upgrade() -> None:
    with op.batch_alter_table("endpoint_registration") as batch:
        batch.add_column(sa.Column("host", sa.String(255), nullable=True))
        batch.add_column(sa.Column("pid", sa.Integer, nullable=True))
        batch.add_column(sa.Column("version", sa.String(32), nullable=True))
        batch.add_column(sa.Column("running", Name, nullable=True))
        batch.add_column(sa.Column("queued", sa.Integer, nullable=True))
        batch.add_column(sa.Column("heartbeat_interval", sa.Float, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("endpoint_registration") as batch:
        for column in ("heartbeat_interval", "queued", "running", "version", "pid", "host"):
            batch.drop_column(column)
