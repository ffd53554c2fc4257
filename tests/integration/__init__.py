"""Redis with SQL: the ledger, its copy, recovery, processes and crashes."""
