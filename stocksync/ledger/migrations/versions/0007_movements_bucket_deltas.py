"""movements carry the deltas of the buckets beyond the shelf (damaged, quality_control,
in_transit), and the position index covers them on PostgreSQL

Revision ID: 0007
Revises: 0006
Create Date: 2027-03-01 09:00:00

The columns are NOT NULL with a server default of 0: every row written before has no bucket
delta, and adding such a column changes no row (PostgreSQL 11+ and SQLite record the default
in the catalogue), so the upgrade is quick at any size.

On PostgreSQL this rebuilds ix_movements_position (the audit's fold reads the deltas from the
index alone), which blocks writes to stock_movements while it runs (about 2 s per million rows
here). To avoid that, add the columns and build the new index first by hand: ``CREATE INDEX
CONCURRENTLY ix_movements_position_v3 ON stock_movements (namespace, sku, location_id, seq)
INCLUDE (d_on_hand, d_reserved, d_damaged, d_quality_control, d_in_transit)``, drop the old
one, rename the new one to ix_movements_position, then run the upgrade (it finds the index
already covering and the columns there).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "stock_movements"
INDEX = "ix_movements_position"
COLUMNS = ["namespace", "sku", "location_id", "seq"]
BUCKET_DELTAS = ["d_damaged", "d_quality_control", "d_in_transit"]
COVERED_BEFORE = ["d_on_hand", "d_reserved"]


def _existing_columns() -> set[str]:
    return {c["name"] for c in sa.inspect(op.get_bind()).get_columns(TABLE)}


def _covers_bucket_deltas() -> bool:
    """Whether ix_movements_position already INCLUDEs the bucket deltas (built by hand)."""
    definition = (
        op.get_bind()
        .execute(sa.text("SELECT indexdef FROM pg_indexes WHERE indexname = :i"), {"i": INDEX})
        .scalar()
    )
    return definition is not None and all(c in str(definition) for c in BUCKET_DELTAS)


def _recreate_index(include: list[str]) -> None:
    op.drop_index(INDEX, table_name=TABLE)
    op.create_index(INDEX, TABLE, COLUMNS, postgresql_include=include)


def upgrade() -> None:
    present = _existing_columns()
    for name in BUCKET_DELTAS:
        if name not in present:
            op.add_column(
                TABLE, sa.Column(name, sa.Integer(), nullable=False, server_default=sa.text("0"))
            )
    if op.get_bind().dialect.name == "postgresql" and not _covers_bucket_deltas():
        _recreate_index(COVERED_BEFORE + BUCKET_DELTAS)  # SQLite has no INCLUDE


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _recreate_index(COVERED_BEFORE)
    with op.batch_alter_table(TABLE) as batch:  # SQLite: the table is copied without them
        for name in reversed(BUCKET_DELTAS):
            batch.drop_column(name)
