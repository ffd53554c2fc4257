"""stocksync: real-time inventory and reservation sync engine for omnichannel retail."""

__version__ = "0.1.0"
