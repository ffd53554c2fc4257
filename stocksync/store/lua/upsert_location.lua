-- upsert_location.lua: create or update a location (store or warehouse).
--
-- ARGV[3] location_id   ARGV[4] name   ARGV[5] kind   ARGV[6] lat ('' = none)
-- ARGV[7] lon ('' = none)   ARGV[8] pickup ('1'|'0')   ARGV[9] ship ('1'|'0')
--
-- Returns {'ok', created}, or {'invalid_coordinates', lat, lon} (nothing written) when lat/lon
-- are not numbers within Redis GEO's range (GEOADD would fail after the HSET: no rollback),
-- or {'location_moving', loc} while the location moves to another stock domain.

local loc = ARGV[3]
local name = ARGV[4]
local kind = ARGV[5]
local lat = ARGV[6]
local lon = ARGV[7]
local pickup = ARGV[8]
local ship = ARGV[9]

-- GEO_LAT_MAX and GEO_LON_MAX (Redis GEO's range) come from Python, prepended by scripts.py.
local function within(text, limit)
  local n = tonumber(text)
  return n ~= nil and n == n and math.abs(n) <= limit -- n == n: not NaN
end

if (lat ~= '' and not within(lat, GEO_LAT_MAX)) or (lon ~= '' and not within(lon, GEO_LON_MAX)) then
  return { 'invalid_coordinates', lat, lon }
end

-- A location being moved to another stock domain (move_location.lua) is not re-created here.
if redis.call('EXISTS', moving_key(loc)) == 1 then return { 'location_moving', loc } end

local lk = loc_key(loc)
local created = 1 - redis.call('EXISTS', lk)
redis.call('HSET', lk, 'name', name, 'kind', kind, 'lat', lat, 'lon', lon, 'pickup', pickup,
  'ship', ship)
redis.call('SADD', LOCATIONS_KEY, loc)
if lat ~= '' and lon ~= '' then
  redis.call('GEOADD', GEO_KEY, lon, lat, loc)
else
  redis.call('ZREM', GEO_KEY, loc)
end
emit('location_upserted', '', loc, { 'name', name, 'loc_kind', kind, 'pickup', pickup,
  'ship', ship, 'lat', lat, 'lon', lon })
return { 'ok', created }
