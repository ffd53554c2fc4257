"""Load generators and drivers: the open-loop and spread-load generator processes, the drivers
that start them and gather their results, and wrk with its Lua scripts (``wrk/``)."""
