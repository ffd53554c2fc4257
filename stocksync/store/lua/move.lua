-- move.lua: re-source an active reservation: move every line at one location to another
-- (e.g. a till sold the unit a chat hold was waiting for). All lines move or none does.
--
-- ARGV[3] reservation_id   ARGV[4] from location_id   ARGV[5] to location_id
-- ARGV[6] the caller's access ('' = any; see may_access in _lib.lua): a reservation the
--         caller may not access is 'not_found'
--
-- The units stay promised throughout: reserved drops at the source and rises at the target in
-- this one script. The deadline and state are kept; the at-risk flag is cleared.
--
-- Returns {'ok', 0, field, value, ...} | {'not_found'} | {'invalid_transition', state}
--         | {'stock_regressed', sku} | {'unknown_location', loc} | {'no_lines', loc}
--         | {'insufficient_stock', sku, loc, requested, available, ...}
--         | {'hold_limit_reached', 'units', limit, to}  (a hold capped in units, see reserve.lua)

local id = ARGV[3]
local from = ARGV[4]
local to = ARGV[5]
local access = ARGV[6]

local rk, state, lines, regressed = load_reservation(id, access)
if not rk then return { 'not_found' } end
if regressed then return { 'stock_regressed', regressed } end
if not ACTIVE[state] then return { 'invalid_transition', state } end
if redis.call('EXISTS', loc_key(to)) == 0 then return { 'unknown_location', to } end

-- Checks: the target has room for every moving line, before the first write.
local moving, kept, short, on_hands = {}, {}, {}, {}
for _, ln in ipairs(lines) do
  if ln[2] == from then table.insert(moving, ln) else table.insert(kept, ln) end
end
if #moving == 0 then return { 'no_lines', from } end
for i, ln in ipairs(moving) do
  reap_position(ln[1], to)
  local on_hand, reserved, safety = read_position(ln[1], to)
  on_hands[i] = on_hand
  local available = on_hand - reserved - safety
  if ln[3] > available then
    table.insert(short, ln[1]); table.insert(short, to); table.insert(short, ln[3])
    table.insert(short, math.max(0, available))
  end
end
if #short > 0 then
  table.insert(short, 1, 'insufficient_stock')
  return short
end
-- A hold counted in units per location (reserve.lua) takes its count along, within the same
-- cap at the target: moving is no way around the cap.
local owner = redis.call('HMGET', rk, 'key', 'channel', 'ucap')
local unit_cap = tonumber(owner[3] or '')
local counted = unit_cap and owner[1] and owner[1] ~= ''
if counted then
  local units = 0
  for _, ln in ipairs(moving) do units = units + ln[3] end
  if num(redis.call('HGET', heldunits_key(owner[1], owner[2]), to)) + units > unit_cap then
    return { 'hold_limit_reached', 'units', unit_cap, to }
  end
end

-- Writes.
if counted then
  local moved_to = {}
  for _, ln in ipairs(moving) do table.insert(moved_to, { ln[1], to, ln[3] }) end
  count_units(owner[1], owner[2], moving, -1)
  count_units(owner[1], owner[2], moved_to, 1)
end
local r = redis.call('HMGET', rk, 'channel', 'expires_at')
local channel, expires_at = r[1] or '', r[2] or ''
drop_indexes(id, rk, lines) -- indexed again below, at its new lines, without the flag
local merged = {}
for _, ln in ipairs(kept) do merged[ln[1] .. '\0' .. ln[2]] = { ln[1], ln[2], ln[3] } end
for i, ln in ipairs(moving) do
  local sku, qty = ln[1], ln[3]
  local from_reserved = redis.call('HINCRBY', pos_key(sku, from), RESERVED, -qty)
  local from_on_hand = num(redis.call('HGET', pos_key(sku, from), ON_HAND))
  local to_reserved = redis.call('HINCRBY', pos_key(sku, to), RESERVED, qty)
  redis.call('SADD', sku_locs_key(sku), to)
  local k = sku .. '\0' .. to
  if merged[k] then merged[k][3] = merged[k][3] + qty else merged[k] = { sku, to, qty } end
  local fields = { 'res', id, 'ch', channel, 'qty', qty, 'from', from, 'to', to,
    'exp', expires_at, 'd_on_hand', 0 }
  local src = { unpack(fields) }
  for _, v in ipairs({ 'd_reserved', -qty, 'on_hand', from_on_hand, 'reserved', from_reserved })
  do table.insert(src, v) end
  emit('moved', sku, from, src)
  for _, v in ipairs({ 'd_reserved', qty, 'on_hand', on_hands[i], 'reserved', to_reserved })
  do table.insert(fields, v) end
  emit('moved', sku, to, fields)
end

local new_lines = {}
for _, ln in pairs(merged) do table.insert(new_lines, ln) end
table.sort(new_lines, function(a, b)
  if a[1] ~= b[1] then return a[1] < b[1] end
  return a[2] < b[2]
end)
redis.call('HSET', rk, 'lines', cjson.encode(new_lines), 'updated_at', NOW)
redis.call('HDEL', rk, 'at_risk')
index_reservation(id, rk, new_lines)
return reply_reservation(0, rk)
