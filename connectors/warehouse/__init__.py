"""Warehouse (WMS) file connector: snapshot and receipt files dropped in an inbox directory."""
