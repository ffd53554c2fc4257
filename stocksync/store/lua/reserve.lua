-- reserve.lua: hold units on one or more lines, all or nothing, idempotent by reservation id.
--
-- ARGV[3] reservation_id   ARGV[4] channel   ARGV[5] ttl in ms   ARGV[6] request fingerprint
-- ARGV[7] customer_ref ('' = none)
-- ARGV[8] lines as JSON [[sku, location_id, qty], ...], already summed per (sku, location)
-- ARGV[9] hold code (stored form)   ARGV[10] API key id ('' = none)
-- ARGV[11] max active holds of that key (0 = no cap)
-- ARGV[12] max active holds of the customer_ref (0 = no cap)
-- ARGV[13] '1' = confirm in the same call (an order placed with no hold before it), '' = hold
-- ARGV[14] pickup deadline in ms from now for a confirmed reservation ('' = none)
-- ARGV[15] max units that API key may hold at one location on this channel (0 = no cap)
-- ARGV[16] pool lines as JSON [[sku, pool_id, qty], ...] summed per (sku, pool), sorted
--          ('' = none; callers of an older build pass only ARGV[3..15])
-- ARGV[17] near lat, ARGV[18] near lon ('' = none)   ARGV[19] '1' = a line may be split
--
-- Pool lines are given locations first (choose_sources, _sourcing.lua), in this same call;
-- then every check and write below runs on the resulting lines, as for a reservation that
-- named those locations.
--
-- Returns {'ok', 1, created_at, expires_at}                  a new hold
--         {'ok', 1, created_at, expires_at, lines, sources}  a new hold with pool lines: the
--                                                            lines chosen and where each pool
--                                                            line's units came from (JSON)
--         {'ok', 0, field, value, ...}                       a retry: the stored reservation
--         {'idempotency_conflict'}                           same id, another request or key
--         {'stock_regressed', sku}                           Redis is behind the ledger
--         {'unknown_location', location_id, ...}
--         {'insufficient_stock', sku, loc, requested, available, ...}   nothing reserved
--         {'hold_limit_reached', 'key'|'customer', limit}     nothing reserved
--         {'hold_limit_reached', 'units', limit, location_id} nothing reserved
--         {'code_taken'}                                     retry with another code
--         {'unknown_pool', pool} | {'near_required', pool} | {'pool_channel', pool, channel}
--         (an insufficient_stock pool line reads sku, 'pool:<id>', requested, pool offer)

local id = ARGV[3]
local channel = ARGV[4]
local ttl_ms = tonumber(ARGV[5])
local fp = ARGV[6]
local customer_ref = ARGV[7]
local lines_json = ARGV[8]
local code = ARGV[9]
local key_id = ARGV[10]
local key_cap = tonumber(ARGV[11])
local customer_cap = tonumber(ARGV[12])
local confirm = ARGV[13] == '1'
local pickup_ms = ARGV[14]
local unit_cap = tonumber(ARGV[15])
local pool_lines, near, split = nil, nil, false
if NARGS >= 19 and ARGV[16] ~= '' then
  pool_lines = cjson.decode(ARGV[16])
  if ARGV[17] ~= '' then near = { tonumber(ARGV[17]), tonumber(ARGV[18]) } end
  split = ARGV[19] == '1'
end

local rk = res_key(id)
local prior = redis.call('HMGET', rk, 'fp', 'key')
if prior[1] then
  -- A retry is the same request by the same key: another key's reservation is not replayed
  -- (shown) to it.
  if prior[1] ~= fp or (prior[2] or '') ~= key_id then return { 'idempotency_conflict' } end
  load_reservation(id) -- lazily expires the stored hold if its deadline passed
  return reply_reservation(0, rk)
end

local lines = cjson.decode(lines_json)
local regressed = regressed_sku(lines) or (pool_lines and regressed_sku(pool_lines))
if regressed then return { 'stock_regressed', regressed } end
reap_lines(lines)
local sources, pool_short = nil, {}
if pool_lines then
  local refusal
  lines, sources, pool_short, refusal = choose_sources(lines, pool_lines, channel, near, split)
  if refusal then return refusal end
  if #pool_short == 0 then lines_json = cjson.encode(lines) end
end

-- Active holds in an owner's index (scored by deadline); when the cap is in reach, due ones
-- are reaped first (as many as it takes to get under the cap, REAP_PER_CALL at most) so an
-- expired hold never counts against it.
local function active_count(index_key, cap)
  local n = redis.call('ZCARD', index_key)
  if n < cap then return n end
  reap_ordered(index_key, math.min(n - cap + 1, REAP_PER_CALL))
  return redis.call('ZCARD', index_key)
end

-- Checks: every location exists and every line fits, before the first write.
local missing, short, on_hands = {}, {}, {}
for i, ln in ipairs(lines) do
  local p = redis.call('HMGET', pos_key(ln[1], ln[2]), ON_HAND, RESERVED, SAFETY)
  if not p[1] and redis.call('EXISTS', loc_key(ln[2])) == 0 then
    table.insert(missing, ln[2])
  else
    local available = num(p[1]) - num(p[2]) - num(p[3])
    if ln[3] > available and reap_for_line(ln[1], ln[2], ln[3] - available) > 0 then
      p = redis.call('HMGET', pos_key(ln[1], ln[2]), ON_HAND, RESERVED, SAFETY)
      available = num(p[1]) - num(p[2]) - num(p[3])
    end
    on_hands[i] = num(p[1])
    if ln[3] > available then
      table.insert(short, ln[1]); table.insert(short, ln[2]); table.insert(short, ln[3])
      table.insert(short, math.max(0, available))
    end
  end
end
if #missing > 0 then
  table.insert(missing, 1, 'unknown_location')
  return missing
end
if #short > 0 or #pool_short > 0 then
  for _, v in ipairs(pool_short) do table.insert(short, v) end
  table.insert(short, 1, 'insufficient_stock')
  return short
end
if key_id ~= '' and key_cap > 0 and active_count(bykey_key(key_id), key_cap) >= key_cap then
  return { 'hold_limit_reached', 'key', key_cap }
end
if customer_ref ~= '' and customer_cap > 0
    and active_count(bycust_key(customer_ref), customer_cap) >= customer_cap then
  return { 'hold_limit_reached', 'customer', customer_cap }
end
-- The first location where this key would hold more than unit_cap units on this channel, or
-- nil. When one is over, the key's due holds are expired first so they never count.
local function over_unit_cap()
  local adding, locs = {}, {}
  for _, ln in ipairs(lines) do
    if not adding[ln[2]] then adding[ln[2]] = 0; table.insert(locs, ln[2]) end
    adding[ln[2]] = adding[ln[2]] + ln[3]
  end
  table.sort(locs)
  local hk = heldunits_key(key_id, channel)
  -- The first location over the cap, and by how many units.
  local function first_over()
    for _, loc in ipairs(locs) do
      local over = num(redis.call('HGET', hk, loc)) + adding[loc] - unit_cap
      if over > 0 then return loc, over end
    end
    return nil, 0
  end
  local loc, over = first_over()
  if not loc then return nil end
  -- The key's due holds, by deadline: as many as it is units over (each frees one at least,
  -- if it is at that location), REAP_PER_CALL at most.
  reap_ordered(bykey_key(key_id), math.min(over, REAP_PER_CALL))
  return (first_over())
end
local counted = key_id ~= '' and unit_cap > 0
if counted then
  local loc = over_unit_cap()
  if loc then return { 'hold_limit_reached', 'units', unit_cap, loc } end
end
-- Writes. The hold code is taken by the first of them (SET NX): taken already, nothing was
-- written and the caller retries with another code.
if code ~= '' and not redis.call('SET', code_key(code), id, 'NX') then return { 'code_taken' } end
local expires_at = NOW + ttl_ms
-- One HSET; empty optional fields are left out of the hash (readers take absent as '').
local hash = { 'fp', fp, 'channel', channel, 'state', 'held', 'lines', lines_json,
  'created_at', NOW, 'updated_at', NOW, 'expires_at', expires_at, 'h:held', NOW }
if customer_ref ~= '' then table.insert(hash, 'customer_ref'); table.insert(hash, customer_ref) end
if code ~= '' then table.insert(hash, 'code'); table.insert(hash, code) end
if key_id ~= '' then table.insert(hash, 'key'); table.insert(hash, key_id) end
if counted then table.insert(hash, 'ucap'); table.insert(hash, unit_cap) end
local sources_json = ''
if sources then
  sources_json = cjson.encode(sources)
  table.insert(hash, 'sources'); table.insert(hash, sources_json)
end
redis.call('HSET', rk, unpack(hash))
if counted then count_units(key_id, channel, lines, 1) end
for i, ln in ipairs(lines) do
  local sku, loc, qty = ln[1], ln[2], ln[3]
  local reserved = redis.call('HINCRBY', pos_key(sku, loc), RESERVED, qty)
  local fields = { 'res', id, 'ch', channel, 'qty', qty, 'd_on_hand', 0, 'd_reserved', qty,
    'on_hand', on_hands[i], 'reserved', reserved, 'exp', expires_at }
  -- The order's details go once, on the event of the reservation's first line (lines are
  -- sorted), not on every line's: the ledger and the rebuild take them from there. Always
  -- the same fields, empty or not: a stream stores the names once for entries whose fields
  -- match its node's first entry (measured: leaving empty ones out made events larger).
  if i == 1 then
    for _, v in ipairs({ 'cref', customer_ref, 'lines', lines_json, 'fp', fp, 'code', code,
      'key', key_id }) do table.insert(fields, v) end
  end
  emit('held', sku, loc, fields)
end
if confirm then -- as confirm.lua does, in this same call: no moment when the hold could lapse
  redis.call('HSET', rk, 'state', 'confirmed', 'h:confirmed', NOW)
  expires_at = ''
  if pickup_ms ~= '' then expires_at = NOW + tonumber(pickup_ms) end
  set_deadline(id, rk, lines, expires_at) -- indexes it, as confirmed
  emit_lines('confirmed', id, rk, lines)
else
  index_reservation(id, rk, lines)
end
if sources then return { 'ok', 1, NOW, expires_at, lines_json, sources_json } end
return { 'ok', 1, NOW, expires_at }
