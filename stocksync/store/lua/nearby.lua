-- nearby.lua: a SKU's positions at the locations within a radius of a point, nearest first
-- (GEOSEARCH on the namespace's geo index, which upsert_location.lua maintains). Due holds at
-- each returned position are reaped first, as in read_positions.lua.
--
-- ARGV[3] sku   ARGV[4] lon   ARGV[5] lat   ARGV[6] radius in km
-- ARGV[7] '1' = only pickup-enabled locations, '0' = all
--
-- Returns a flat array per location that has a position for the SKU: its position_row
-- (_lib.lua, 14 fields), then distance_km

local sku = ARGV[3]
local lon = ARGV[4]
local lat = ARGV[5]
local radius_km = ARGV[6]
local pickup_only = ARGV[7] == '1'

local found = redis.call('GEOSEARCH', GEO_KEY, 'FROMLONLAT', lon, lat,
  'BYRADIUS', radius_km, 'km', 'ASC', 'WITHDIST')
local frozen = redis.call('SISMEMBER', REGRESSED_KEY, sku) == 1
local out = {}
for _, hit in ipairs(found) do
  local loc, dist = hit[1], hit[2]
  local l = redis.call('HMGET', loc_key(loc), 'kind', 'name', 'lat', 'lon', 'pickup', 'ship')
  if l[1] and (l[5] == '1' or not pickup_only)
      and redis.call('SISMEMBER', sku_locs_key(sku), loc) == 1 then
    if not frozen then reap_position(sku, loc) end
    position_row(out, sku, loc, l)
    table.insert(out, dist)
  end
end
return out
