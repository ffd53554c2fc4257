-- remove_incoming.lua: remove an incoming supply from a position (cancelled, or delivered
-- without a receipt that named it).
--
-- ARGV[3] sku   ARGV[4] location_id   ARGV[5] supply_id
--
-- Returns {'ok', qty removed} | {'not_found'} (no such supply there)
--         {'unknown_location', loc} | {'stock_regressed', sku}

local sku = ARGV[3]
local loc = ARGV[4]
local supply = ARGV[5]

if redis.call('EXISTS', loc_key(loc)) == 0 then return { 'unknown_location', loc } end
if regressed_sku({ { sku } }) then return { 'stock_regressed', sku } end
local ak, field = arrivals_key(sku, loc), 's:' .. supply
local before = redis.call('HGET', ak, field)
if not before then return { 'not_found' } end

local qty = parse_arrival(before)
redis.call('HDEL', ak, field)
emit('incoming_removed', sku, loc, { 'supply', supply, 'qty', qty })
return { 'ok', qty }
