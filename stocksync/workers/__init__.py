"""Background workers: the hold reaper, the ledger copy, regression checks and audits."""
