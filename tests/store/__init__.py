"""Each Lua script against a real Redis, and their vocabulary against Python's."""
