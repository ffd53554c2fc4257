"""wider namespace and event id columns: a stock domain's ledger namespace is ``<ns>:<domain>``

Revision ID: 0005
Revises: 0004
Create Date: 2027-01-15 12:00:00

Each stock domain's events are kept under the ledger namespace ``<namespace>:<domain>`` (its
own per-SKU seqs and event ids ``<ledger namespace>/<stream id>``): up to 32 + 1 + 32 = 65
characters, and an event id up to 65 + 1 + 41. On PostgreSQL widening a VARCHAR only changes
the catalogue (no table rewrite, indexes kept). SQLite does not enforce a VARCHAR's length, so
there the widening is the model's alone: rebuilding the ledger's largest table to change a
declared length that nothing checks would cost minutes on a large ledger for nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (table, column, before, after)
WIDENED = [
    ("stock_movements", "namespace", 32, 80),
    ("stock_movements", "event_id", 80, 120),
    ("reservations", "namespace", 32, 80),
    ("customer_erasures", "namespace", 32, 80),
    ("reservation_transitions", "namespace", 32, 80),
    ("locations", "namespace", 32, 80),
]


def _alter(wider: bool) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, column, before, after in WIDENED:
        op.alter_column(
            table,
            column,
            type_=sa.String(after if wider else before),
            existing_type=sa.String(before if wider else after),
            existing_nullable=False,
        )


def upgrade() -> None:
    _alter(wider=True)


def downgrade() -> None:
    _alter(wider=False)  # fails if a longer value is stored, as it should
