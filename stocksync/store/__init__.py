"""Redis adapter: key layout, Lua scripts and the store that calls them."""
