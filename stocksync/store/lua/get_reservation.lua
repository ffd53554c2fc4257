-- get_reservation.lua: read a reservation, expiring it first if its deadline passed.
--
-- ARGV[3] reservation_id
--
-- Returns the reservation hash as a flat field/value array, empty when unknown.

local id = ARGV[3]

local rk = load_reservation(id)
if not rk then return {} end
return redis.call('HGETALL', rk)
