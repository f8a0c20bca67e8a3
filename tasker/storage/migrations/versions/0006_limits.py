"""Limits on a task: its own run time limit, rollout concurrency and error budget.

Revision ID: 0006
Revises: 0005

A task gains `timeout` (seconds one endpoint's run may take), `max_concurrency` and
`max_errors` (as given: "3" or "25%"); none of them set means no such limit.
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("task") as batch:
        batch.add_column(sa.Column("timeout", sa.Double, nullable=True))
        batch.add_column(sa.Column("max_concurrency", sa.String(8), nullable=True))
        batch.add_column(sa.Column("max_errors", sa.String(8), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("task") as batch:
        batch.drop_column("max_errors")
        batch.drop_column("max_concurrency")
        batch.drop_column("timeout")
