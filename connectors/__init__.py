"""Connectors: reconcile POS, warehouse and web-shop systems with the stocksync core.

A sibling package: connectors depend on ``stocksync``; ``stocksync`` never imports them.
Each system gets a subpackage with its network client apart from its pure mapping functions.
"""
