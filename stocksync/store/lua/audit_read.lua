-- audit_read.lua: read pages of positions and their SKU's seq, as they are (no reaping), for
-- the audit. Read only.
--
-- ARGV[3…] sku, locations, sku, locations, … where locations are the location ids of that
--          SKU's positions, one a line (the ledger hands them over in that form, so the caller
--          never splits them). The caller bounds the page (~2 µs of Redis time per position).
--
-- Returns a flat array: per sku, its seq, then on_hand and reserved of each of its positions
-- in the order given (integers, 0 when absent), then one string: the positions with units
-- beyond the shelf, in the same order, a line each '<loc>:<damaged>:<quality_control>:
-- <in_transit>\n' ('' when none; stocksync.ledger.queries.FoldedSku.beyond, which the ledger
-- builds alike so that a SKU's buckets compare as one string).

local out, n = {}, 0
for i = 3, NARGS - 1, 2 do
  local sku = ARGV[i]
  n = n + 1
  out[n] = num(redis.call('HGET', SEQ_KEY, sku))
  local beyond = {}
  for loc in string.gmatch(ARGV[i + 1], '[^\n]+') do
    local pos = redis.call('HMGET', pos_key(sku, loc), ON_HAND, RESERVED, DAMAGED,
      QUALITY_CONTROL, IN_TRANSIT)
    out[n + 1], out[n + 2] = num(pos[1]), num(pos[2])
    n = n + 2
    if pos[3] or pos[4] or pos[5] then
      local damaged, qc, in_transit = num(pos[3]), num(pos[4]), num(pos[5])
      if damaged ~= 0 or qc ~= 0 or in_transit ~= 0 then
        table.insert(beyond, loc .. ':' .. damaged .. ':' .. qc .. ':' .. in_transit .. '\n')
      end
    end
  end
  n = n + 1
  out[n] = table.concat(beyond)
end
return out
