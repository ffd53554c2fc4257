"""who made each movement; customer references erased on request

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 08:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("stock_movements") as batch:
        batch.add_column(
            sa.Column("actor", sqlmodel.sql.sqltypes.AutoString(length=80), nullable=True)
        )
    op.create_table(
        "customer_erasures",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("namespace", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("ref_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("actor", sqlmodel.sql.sqltypes.AutoString(length=80), nullable=True),
        sa.Column("reservations", sa.Integer(), nullable=False),
        sa.Column("erased_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_customer_erasures_hash", "customer_erasures", ["namespace", "ref_hash"])


def downgrade() -> None:
    op.drop_index("ix_customer_erasures_hash", table_name="customer_erasures")
    op.drop_table("customer_erasures")
    with op.batch_alter_table("stock_movements") as batch:
        batch.drop_column("actor")
