"""Pure rules: no Redis, no SQL, no network."""
