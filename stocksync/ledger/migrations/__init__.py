"""Alembic migrations of the SQL ledger (applied by `stocksync db upgrade` and at start)."""
