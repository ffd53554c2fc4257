-- ready.lua: confirmed -> ready (picked and set aside for collection). Keeps the deadline.
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
if state == 'ready' then return reply_reservation(1, rk) end
if state ~= 'confirmed' then return { 'invalid_transition', state } end

drop_indexes(id, rk, lines) -- from the confirmed ones, to the ready ones
redis.call('HSET', rk, 'state', 'ready', 'updated_at', NOW, 'h:ready', NOW)
index_reservation(id, rk, lines)
emit_lines('ready', id, rk, lines)
return reply_reservation(0, rk)
