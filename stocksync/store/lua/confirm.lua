-- confirm.lua: held -> confirmed (an order was placed), optionally with a pickup deadline.
--
-- ARGV[3] reservation_id   ARGV[4] pickup deadline in ms from now ('' = none)
-- ARGV[5] the caller's access ('' = any; see may_access in _lib.lua): a reservation the
--         caller may not access is 'not_found'
--
-- Returns {'ok', repeated, field, value, ...} | {'not_found'} | {'invalid_transition', state}
--         | {'stock_regressed', sku}

local id = ARGV[3]
local pickup_ms = ARGV[4]
local access = ARGV[5]

local rk, state, lines, regressed = load_reservation(id, access)
if not rk then return { 'not_found' } end
if regressed then return { 'stock_regressed', regressed } end
if state == 'confirmed' then
  return reply_reservation(1, rk)
end
if state ~= 'held' then return { 'invalid_transition', state } end

local expires_at = ''
if pickup_ms ~= '' then expires_at = NOW + tonumber(pickup_ms) end
drop_indexes(id, rk, lines) -- from the held ones; set_deadline indexes it as confirmed
redis.call('HSET', rk, 'state', 'confirmed', 'updated_at', NOW, 'h:confirmed', NOW)
set_deadline(id, rk, lines, expires_at)
emit_lines('confirmed', id, rk, lines)
return reply_reservation(0, rk)
