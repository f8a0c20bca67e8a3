"""The task, task_response and endpoint_registration tables.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

JsonText = sa.Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")
Name = sa.String(50).with_variant(mysql.VARCHAR(50, collation="utf8mb4_bin"), "mysql", "mariadb")


def upgrade() -> None:
    op.create_table(
        "task",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("identifier", Name, nullable=False),
        sa.Column("type", Name, nullable=False),
        sa.Column("payload", JsonText, nullable=False),
        sa.Column("endpoints", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("start_time", sa.DateTime, nullable=False),
        sa.Column("last_modified_time", sa.DateTime, nullable=False),
        sa.Column("deadline", sa.DateTime, nullable=False),
        sa.Column("receipt_checked", sa.Boolean, nullable=False),
        sa.Column("claim_until", sa.DateTime, nullable=True),
        sa.UniqueConstraint("type", "identifier", name="uq_task_type_identifier"),
        mysql_engine="InnoDB",
        mysql_charset="utf8mb4",
    )
    op.create_index("ix_task_status_claim", "task", ["status", "claim_until"])
    op.create_index("ix_task_checked_deadline", "task", ["receipt_checked", "deadline"])
    op.create_table(
        "task_response",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("task_id", sa.Integer, sa.ForeignKey("task.id", ondelete="CASCADE"), nullable=False),
        sa.Column("endpoint", Name, nullable=False),
        sa.Column("status", sa.SmallInteger, nullable=False),
        sa.Column("errnr", sa.Integer, nullable=False),
        sa.Column("errmsg", sa.Text, nullable=True),
        sa.Column("payload", JsonText, nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("start_time", sa.DateTime, nullable=False),
        sa.Column("last_modified_time", sa.DateTime, nullable=False),
        sa.UniqueConstraint("task_id", "endpoint", name="uq_task_response_endpoint"),
        mysql_engine="InnoDB",
        mysql_charset="utf8mb4",
    )
    op.create_table(
        "endpoint_registration",
        sa.Column("type", Name, primary_key=True),
        sa.Column("endpoint", Name, primary_key=True),
        sa.Column("registered_time", sa.DateTime, nullable=False),
        sa.Column("last_seen_time", sa.DateTime, nullable=False),
        mysql_engine="InnoDB",
        mysql_charset="utf8mb4",
    )


def downgrade() -> None:
    op.drop_table("endpoint_registration")
    op.drop_table("task_response")
    op.drop_index("ix_task_checked_deadline", table_name="task")
    op.drop_index("ix_task_status_claim", table_name="task")
    op.drop_table("task")
