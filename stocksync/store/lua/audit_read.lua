-- audit_read.lua: read pages of positions and their SKU's seq, as they are (no reaping), for
-- the audit. Read only.
--
-- ARGV[3…] sku, locations, sku, locations, … where locations are the location ids of that
--          SKU's positions, one a line (the ledger hands them over in that form, so the caller
--          never splits them). The caller bounds the page (~2 µs of Redis time per position).
--
-- Returns a flat array of integers (0 when absent): per sku, its seq, then of each of its
-- positions in the order given on_hand, reserved, damaged, quality_control, in_transit
-- (stocksync.ledger.queries.AUDITED).

local out, n = {}, 0
for i = 3, NARGS - 1, 2 do
  local sku = ARGV[i]
  n = n + 1
  out[n] = num(redis.call('HGET', SEQ_KEY, sku))
  for loc in string.gmatch(ARGV[i + 1], '[^\n]+') do
    local pos = redis.call('HMGET', pos_key(sku, loc), ON_HAND, RESERVED, DAMAGED,
      QUALITY_CONTROL, IN_TRANSIT)
    out[n + 1], out[n + 2], out[n + 3] = num(pos[1]), num(pos[2]), num(pos[3])
    out[n + 4], out[n + 5] = num(pos[4]), num(pos[5])
    n = n + 5
  end
end
return out
