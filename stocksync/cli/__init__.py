"""The `stocksync` command line: serve, worker, rebuild, audit, keys, stock, connectors."""
