-- fulfill.lua: held | confirmed | ready -> fulfilled. The units leave: on_hand and reserved
-- both drop by each line's qty.
--
-- ARGV[3] reservation_id
--
-- Returns {'ok', repeated, field, value, ...} | {'not_found'} | {'invalid_transition', state}
--         | {'stock_regressed', sku}

local id = ARGV[3]

local rk, state, lines, regressed = load_reservation(id)
if not rk then return { 'not_found' } end
if regressed then return { 'stock_regressed', regressed } end
if state == 'fulfilled' then return reply_reservation(1, rk) end
if not ACTIVE[state] then return { 'invalid_transition', state } end

finish(id, rk, lines, 'fulfilled', true)
return reply_reservation(0, rk)
