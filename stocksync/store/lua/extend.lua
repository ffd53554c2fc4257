-- extend.lua: move the deadline of an active reservation to now + ttl. The state is kept.
--
-- ARGV[3] reservation_id   ARGV[4] ttl in ms
-- ARGV[5] the caller's access ('' = any; see may_access in _lib.lua): a reservation the
--         caller may not access is 'not_found'
--
-- Returns {'ok', 0, field, value, ...} | {'not_found'} | {'invalid_transition', state}
--         | {'stock_regressed', sku}

local id = ARGV[3]
local ttl_ms = tonumber(ARGV[4])
local access = ARGV[5]

local rk, state, lines, regressed = load_reservation(id, access)
if not rk then return { 'not_found' } end
if regressed then return { 'stock_regressed', regressed } end
if not ACTIVE[state] then return { 'invalid_transition', state } end

local expires_at = NOW + ttl_ms
redis.call('HSET', rk, 'updated_at', NOW)
set_deadline(id, rk, lines, expires_at)
emit_lines('extended', id, rk, lines)
return reply_reservation(0, rk)
