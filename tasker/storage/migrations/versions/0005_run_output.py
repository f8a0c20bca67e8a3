"""Output: what a run's handler wrote, stored in chunks, and its size and tail on each run.

Revision ID: 0005
Revises: 0004

`run_output` holds a run's output as chunks of at most 1 MiB of UTF-8 each, numbered by `seq`
from 0; `output_size` (bytes as written) and `output_tail` (its last 2,000 characters) go on
the response of the current run and on each earlier run a retry keeps in `task_run`.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

LongText = sa.Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")
Name = sa.String(50).with_variant(mysql.VARCHAR(50, collation="utf8mb4_bin"), "mysql", "mariadb")


def upgrade() -> None:
    op.create_table(
        "run_output",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("task_id", sa.Integer, sa.ForeignKey("task.id", ondelete="CASCADE"), nullable=False),
        sa.Column("endpoint", Name, nullable=False),
        sa.Column("run", sa.Integer, nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("chunk", LongText, nullable=False),
        sa.UniqueConstraint("task_id", "endpoint", "run", "seq", name="uq_run_output_chunk"),
    )
    for table in ("task_response", "task_run"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("output_size", sa.BigInteger, nullable=True))
            batch.add_column(sa.Column("output_tail", sa.Text, nullable=True))


def downgrade() -> None:
    for table in ("task_run", "task_response"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("output_tail")
            batch.drop_column("output_size")
    op.drop_table("run_output")
