"""webhook subscriptions and their messages (the signed change feed's durable queue)

Revision ID: 0006
Revises: 0005
Create Date: 2027-02-01 09:00:00

In the ledger's database, beside the connectors' dead letters: the queue must survive a
restart of the workers (at-least-once delivery), and the outbox entries that made a message are
acknowledged only once it is committed here.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
AutoString = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    op.create_table(
        "webhook_subscriptions",
        sa.Column("id", AutoString(length=40), nullable=False),
        sa.Column("namespace", AutoString(length=80), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("events", sa.Text(), nullable=False),
        sa.Column("pool", AutoString(length=64), nullable=True),
        sa.Column("location_ids", sa.Text(), nullable=True),
        sa.Column("secret", AutoString(length=100), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_webhook_subscriptions_namespace",
        "webhook_subscriptions",
        ["namespace", "created_at"],
    )
    op.create_table(
        "webhook_messages",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("subscription_id", AutoString(length=40), nullable=False),
        sa.Column("event_id", AutoString(length=64), nullable=False),
        sa.Column("event_type", AutoString(length=40), nullable=False),
        sa.Column("lane", sa.Integer(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("at_ms", sa.BigInteger(), nullable=False),
        sa.Column("status", AutoString(length=12), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_ms", sa.BigInteger(), nullable=False),
        sa.Column("last_error", AutoString(length=300), nullable=True),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("done_ms", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("subscription_id", "event_id"),
    )
    op.create_index(
        "ix_webhook_messages_queue", "webhook_messages", ["subscription_id", "status", "id"]
    )
    op.create_index("ix_webhook_messages_age", "webhook_messages", ["status", "created_ms"])


def downgrade() -> None:
    op.drop_index("ix_webhook_messages_age", table_name="webhook_messages")
    op.drop_index("ix_webhook_messages_queue", table_name="webhook_messages")
    op.drop_table("webhook_messages")
    op.drop_index("ix_webhook_subscriptions_namespace", table_name="webhook_subscriptions")
    op.drop_table("webhook_subscriptions")
