-- release.lua: held | confirmed | ready -> released (cancelled, no-show). Units go back.
--
-- ARGV[3] reservation_id
-- ARGV[4] the caller's access ('' = any; see may_access in _lib.lua): a reservation the
--         caller may not access is 'not_found'
--
-- Returns {'ok', repeated, field, value, ...} | {'not_found'} | {'invalid_transition', state}
--         | {'stock_regressed', sku}

local id = ARGV[3]
local access = ARGV[4]

local rk, state, lines, regressed = load_reservation(id, access)
if not rk then return { 'not_found' } end
if regressed then return { 'stock_regressed', regressed } end
if state == 'released' then return reply_reservation(1, rk) end
if not ACTIVE[state] then return { 'invalid_transition', state } end

finish(id, rk, lines, 'released', false)
return reply_reservation(0, rk)
