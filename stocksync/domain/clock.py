"""Time as the engine records it: Redis server milliseconds since the epoch, and back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def ms_to_datetime(ms: int) -> datetime:
    """An exact UTC datetime for epoch milliseconds (no float rounding)."""
    return EPOCH + timedelta(milliseconds=ms)


def datetime_to_ms(moment: datetime) -> int:
    """Epoch milliseconds of a datetime (the ledger's columns hold UTC)."""
    return int(moment.timestamp() * 1000)
