"""Recovery: detect a Redis that went back in time, rebuild it from the ledger, audit drift."""
