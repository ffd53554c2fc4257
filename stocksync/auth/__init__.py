"""API keys: scopes, optional location binding, hashed storage."""
