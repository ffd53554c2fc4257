-- set_incoming.lua: create or replace an incoming supply at a position (a purchase order, an
-- announced delivery): units expected at a time, in the position's arrivals as 's:<supply_id>'.
-- Setting what it already is changes nothing (no event).
--
-- ARGV[3] sku   ARGV[4] location_id   ARGV[5] supply_id   ARGV[6] qty
-- ARGV[7] expected_at in ms   ARGV[8] most arrivals a position may have
--
-- Returns {'ok', changed 1|0, previous qty (0: new)}
--         {'unknown_location', loc} | {'stock_regressed', sku}
--         {'too_many_arrivals', sku, loc, limit}

local sku = ARGV[3]
local loc = ARGV[4]
local supply = ARGV[5]
local qty = tonumber(ARGV[6])
local expected = ARGV[7]
local max_arrivals = tonumber(ARGV[8])

if redis.call('EXISTS', loc_key(loc)) == 0 then return { 'unknown_location', loc } end
if regressed_sku({ { sku } }) then return { 'stock_regressed', sku } end
local field = 's:' .. supply
if not arrival_room(sku, loc, field, max_arrivals) then
  return { 'too_many_arrivals', sku, loc, max_arrivals }
end

local ak = arrivals_key(sku, loc)
local value = arrival_value(qty, expected)
local before = redis.call('HGET', ak, field)
local prev = 0
if before then
  if before == value then return { 'ok', 0, qty } end
  prev = parse_arrival(before)
end
redis.call('HSET', ak, field, value)
redis.call('SADD', sku_locs_key(sku), loc)
emit('incoming_set', sku, loc, { 'supply', supply, 'qty', qty, 'exp', expected, 'prev', prev })
return { 'ok', 1, prev }
