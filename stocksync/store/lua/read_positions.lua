-- read_positions.lua: reap due holds at a SKU's positions, then read them (with the location's
-- attributes). Reads go through a script so they never show a hold that has already expired.
--
-- ARGV[3] sku   ARGV[4…] location ids (none = every location that has a position for the SKU)
--
-- Returns a flat array, one position_row (_lib.lua, 14 fields) per known location:
--   loc, on_hand, reserved, safety, kind, name, lat, lon, pickup, ship, damaged,
--   quality_control, in_transit, arrivals
-- Unknown locations are left out.

local sku = ARGV[3]
local locs = {}
for i = 4, NARGS do table.insert(locs, ARGV[i]) end
if #locs == 0 then locs = redis.call('SMEMBERS', sku_locs_key(sku)) end

local frozen = redis.call('SISMEMBER', REGRESSED_KEY, sku) == 1
local out = {}
for _, loc in ipairs(locs) do
  local l = redis.call('HMGET', loc_key(loc), 'kind', 'name', 'lat', 'lon', 'pickup', 'ship')
  if l[1] then
    if not frozen then reap_position(sku, loc) end
    position_row(out, sku, loc, l)
  end
end
return out
