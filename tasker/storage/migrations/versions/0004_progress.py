"""Progress: a run's latest report from its handler.

Revision ID: 0004
Revises: 0003

Each response gains `progress` (percent) and `progress_message`, the latest the handler of its
current run reported; a new run starts without.
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("task_response") as batch:
        batch.add_column(sa.Column("progress", sa.Float, nullable=True))
        batch.add_column(sa.Column("progress_message", sa.String(200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("task_response") as batch:
        batch.drop_column("progress_message")
        batch.drop_column("progress")
