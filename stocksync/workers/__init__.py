"""Background workers: the hold reaper (and, later, the ledger writer and fan-out)."""
