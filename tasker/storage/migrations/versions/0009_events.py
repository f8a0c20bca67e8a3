"""Events: every change of a task's status and of a response's run, in order.

Revision ID: 0009
Revises: 0008

`event` rows are written in the transaction that makes the change; their `id` orders them.
`kind` is `task` or `response`; `type` and `identifier` name the task (filters of
`GET /events`); `data` is the event's JSON as clients get it. Rows are pruned by age.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

Name = sa.String(50).with_variant(mysql.VARCHAR(50, collation="utf8mb4_bin"), "mysql", "mariadb")
Id = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "event",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("time", sa.DateTime, nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("type", Name, nullable=False),
        sa.Column("identifier", Name, nullable=False),
        sa.Column("data", sa.Text, nullable=False),
    )
    op.create_index("ix_event_time", "event", ["time"])


def downgrade() -> None:
    op.drop_index("ix_event_time", "event")
    op.drop_table("event")
