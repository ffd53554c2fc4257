-- get_reservation.lua: read a reservation, expiring it first if its deadline passed.
--
-- ARGV[3] reservation_id
--
-- Returns the reservation hash as a flat field/value array, empty when unknown; when units of
-- it were returned, two more pairs: 'returned' (JSON {sku: units returned so far}) and
-- 'return_ids' (comma-separated, oldest first), from the returned units hash (returned_key).

local id = ARGV[3]

local rk = load_reservation(id)
if not rk then return {} end
local reply = redis.call('HGETALL', rk)
local returned = redis.call('HGETALL', returned_key(id))
if #returned > 0 then
  local units, ids = {}, ''
  for i = 1, #returned, 2 do
    if returned[i] == ':ids' then
      ids = returned[i + 1]
    else
      units[returned[i]] = tonumber(returned[i + 1])
    end
  end
  for _, v in ipairs({ 'returned', cjson.encode(units), 'return_ids', ids }) do
    table.insert(reply, v)
  end
end
return reply
