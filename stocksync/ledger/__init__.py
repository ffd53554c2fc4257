"""SQL side: SQLModel tables and the database engine (SQLite by default, PostgreSQL in prod)."""
