"""Webhooks: one delivery row per event and configured webhook, claimed like the outbox.

Revision ID: 0010
Revises: 0009

`webhook_cursor` holds, per webhook (`webhook`: a key made from its URL), the id of the last
event turned into deliveries; it is moved in the transaction that inserts them, so each
(webhook, event) becomes one `webhook_delivery` row (also a unique key), however many API
processes produce them. A delivery is due while `next_attempt_time` is set and has passed; an
API process claims it by writing its own `claim` and `claim_until`; once delivered or given up
`next_attempt_time` is NULL, and the row is pruned by `created_time`. `ix_webhook_delivery_task`
finds a task's earlier deliveries: one is sent only after them.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

Name = sa.String(50).with_variant(mysql.VARCHAR(50, collation="utf8mb4_bin"), "mysql", "mariadb")
Id = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "webhook_cursor",
        sa.Column("webhook", sa.String(32), primary_key=True),
        sa.Column("event_id", sa.BigInteger, nullable=False),
        sa.Column("seen_time", sa.DateTime, nullable=False),
    )
    op.create_table(
        "webhook_delivery",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("webhook", sa.String(32), nullable=False),
        sa.Column("event_id", sa.BigInteger, nullable=False),
        sa.Column("type", Name, nullable=False),
        sa.Column("identifier", Name, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("created_time", sa.DateTime, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_time", sa.DateTime, nullable=True),
        sa.Column("claim", sa.String(32), nullable=True),
        sa.Column("claim_until", sa.DateTime, nullable=True),
        sa.Column("delivered_time", sa.DateTime, nullable=True),
        sa.Column("given_up_time", sa.DateTime, nullable=True),
        sa.Column("last_error", sa.String(200), nullable=True),
        sa.UniqueConstraint("webhook", "event_id", name="uq_webhook_delivery_event"),
    )
    op.create_index("ix_webhook_delivery_due", "webhook_delivery", ["webhook", "next_attempt_time"])
    op.create_index("ix_webhook_delivery_task", "webhook_delivery", ["webhook", "type", "identifier", "event_id"])
    op.create_index("ix_webhook_delivery_created", "webhook_delivery", ["created_time"])


def downgrade() -> None:
    op.drop_index("ix_webhook_delivery_created", "webhook_delivery")
    op.drop_index("ix_webhook_delivery_task", "webhook_delivery")
    op.drop_index("ix_webhook_delivery_due", "webhook_delivery")
    op.drop_table("webhook_delivery")
    op.drop_table("webhook_cursor")
