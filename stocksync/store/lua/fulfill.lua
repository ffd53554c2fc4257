-- fulfill.lua: held | confirmed | ready -> fulfilled. The units leave: on_hand and reserved
-- both drop by each line's qty.
--
-- ARGV[3] reservation_id   ARGV[4] when the units left, in ms (absent or '' = now): a till
-- reporting a collection late; units that left before the newest applied count are already
-- missing from it, so only the hold ends there (the as-of rule, as for adjust.lua)
-- ARGV[5] the caller's access ('' = any; see may_access in _lib.lua): a reservation the
--         caller may not access is 'not_found'
--
-- Returns {'ok', repeated, field, value, ...} | {'not_found'} | {'invalid_transition', state}
--         | {'stock_regressed', sku}

local id = ARGV[3]
local access = ARGV[5]
local occurred = occurred_at(ARGV[4])

local rk, state, lines, regressed = load_reservation(id, access)
if not rk then return { 'not_found' } end
if regressed then return { 'stock_regressed', regressed } end
if state == 'fulfilled' then return reply_reservation(1, rk) end
if not ACTIVE[state] then return { 'invalid_transition', state } end

finish(id, rk, lines, 'fulfilled', true, occurred)
return reply_reservation(0, rk)
