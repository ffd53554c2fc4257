"""Units into a position's quality_control the way the shelf contract's scripts do it: the
bucket is set and a bucket event states it after the change, in one script call."""

from __future__ import annotations

from stocksync.store.redis_store import RedisStockStore
from stocksync.store.scripts import library_source

BUCKET_EVENT = (
    library_source()
    + """
local sku, loc, qc = ARGV[3], ARGV[4], tonumber(ARGV[5])
if qc > 0 then
  redis.call('HSET', pos_key(sku, loc), QUALITY_CONTROL, qc)
else
  redis.call('HDEL', pos_key(sku, loc), QUALITY_CONTROL)
end
emit('stock_moved', sku, loc, { 'qty', 1, 'd_on_hand', 0, 'd_reserved', 0,
  'd_quality_control', 1, 'on_hand', 0, 'reserved', 0, 'damaged', 0, 'quality_control', qc,
  'in_transit', 0, 'from', 'on_hand', 'to', 'quality_control', 'reason', 'test' })
"""
)


async def bucket_event(store: RedisStockStore, sku: str, location_id: str, qc: int) -> None:
    """Set the position's quality_control to ``qc`` with a bucket event saying so."""
    await store.client.eval(BUCKET_EVENT, 1, store.keys.anchor, 60, 0, sku, location_id, qc, "")  # type: ignore[no-untyped-call]
