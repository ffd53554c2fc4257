-- inspection_queue.lua: a location's positions with units in quality_control (returned,
-- awaiting inspection), longest waiting first, from the index emit() keeps (qc_index_key in
-- _lib.lua). It writes only to tidy: due holds at a listed position are reaped (as every read
-- does), and an entry whose position has no such units left is dropped (an index kept from
-- events heals itself where a position changed without one, e.g. by a rebuild).
--
-- ARGV[3] location_id   ARGV[4] limit (rows; the caller bounds it)
--
-- Returns {'unknown_location', loc} or {'ok', waiting, rows...} where waiting is how many
-- positions of the location wait (the index's size) and each row is the SKU, its position_row
-- (_lib.lua, 14 fields), and the ms its units entered quality_control.

local loc, limit = ARGV[3], tonumber(ARGV[4])
local l = redis.call('HMGET', loc_key(loc), 'kind', 'name', 'lat', 'lon', 'pickup', 'ship')
if not l[1] then return { 'unknown_location', loc } end

local index = qc_index_key(loc)
-- Twice the rows asked for: room for stale entries without reading the whole index.
local entries = redis.call('ZRANGE', index, 0, 2 * limit - 1, 'WITHSCORES')
local rows, found = {}, 0
for i = 1, #entries, 2 do
  if found >= limit then break end
  local sku, since = entries[i], entries[i + 1]
  local _, qc = read_buckets(sku, loc)
  if qc > 0 then
    if redis.call('SISMEMBER', REGRESSED_KEY, sku) == 0 then reap_position(sku, loc) end
    table.insert(rows, sku)
    position_row(rows, sku, loc, l)
    table.insert(rows, since)
    found = found + 1
  else
    redis.call('ZREM', index, sku)
  end
end
local out = { 'ok', redis.call('ZCARD', index) }
for _, v in ipairs(rows) do table.insert(out, v) end
return out
