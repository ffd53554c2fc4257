-- audit_read.lua: read a page of positions and their SKU's seq, as they are (no reaping), for
-- the audit. Read only.
--
-- ARGV[3…] sku, location id, sku, location id, … (a page: the caller bounds it)
--
-- Returns a flat array, 3 values per position, in order: on_hand, reserved, the SKU's seq
-- (each 0 when absent).

local out = {}
for i = 3, NARGS - 1, 2 do
  local sku, loc = ARGV[i], ARGV[i + 1]
  local pos = redis.call('HMGET', pos_key(sku, loc), ON_HAND, RESERVED)
  table.insert(out, num(pos[1]))
  table.insert(out, num(pos[2]))
  table.insert(out, num(redis.call('HGET', SEQ_KEY, sku)))
end
return out
