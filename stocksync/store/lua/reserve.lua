-- reserve.lua: hold units on one or more lines, all or nothing, idempotent by reservation id.
--
-- ARGV[3] reservation_id   ARGV[4] channel   ARGV[5] ttl in ms   ARGV[6] request fingerprint
-- ARGV[7] customer_ref ('' = none)
-- ARGV[8] lines as JSON [[sku, location_id, qty], ...], already summed per (sku, location)
--
-- Returns {'ok', 1, created_at, expires_at}                  a new hold
--         {'ok', 0, field, value, ...}                       a retry: the stored reservation
--         {'idempotency_conflict'}                           same id, different request
--         {'stock_regressed', sku}                           Redis is behind the ledger
--         {'unknown_location', location_id, ...}
--         {'insufficient_stock', sku, loc, requested, available, ...}   nothing reserved

local id = ARGV[3]
local channel = ARGV[4]
local ttl_ms = tonumber(ARGV[5])
local fp = ARGV[6]
local customer_ref = ARGV[7]
local lines_json = ARGV[8]

local rk = res_key(id)
local prior_fp = redis.call('HGET', rk, 'fp')
if prior_fp then
  if prior_fp ~= fp then return { 'idempotency_conflict' } end
  load_reservation(id) -- lazily expires the stored hold if its deadline passed
  return reply_reservation(0, rk)
end

local lines = cjson.decode(lines_json)
local regressed = regressed_sku(lines)
if regressed then return { 'stock_regressed', regressed } end
reap_lines(lines)

-- Checks: every location exists and every line fits, before the first write.
local missing, short, on_hands = {}, {}, {}
for i, ln in ipairs(lines) do
  local p = redis.call('HMGET', pos_key(ln[1], ln[2]), 'on_hand', 'reserved', 'safety')
  if not p[1] and redis.call('EXISTS', loc_key(ln[2])) == 0 then
    table.insert(missing, ln[2])
  else
    on_hands[i] = num(p[1])
    local available = on_hands[i] - num(p[2]) - num(p[3])
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
if #short > 0 then
  table.insert(short, 1, 'insufficient_stock')
  return short
end

-- Writes.
local expires_at = NOW + ttl_ms
redis.call('HSET', rk, 'fp', fp, 'channel', channel, 'state', 'held', 'lines', lines_json,
  'created_at', NOW, 'updated_at', NOW, 'expires_at', expires_at, 'customer_ref', customer_ref,
  'h:held', NOW)
redis.call('ZADD', P .. 'active', expires_at, id)
for i, ln in ipairs(lines) do
  local sku, loc, qty = ln[1], ln[2], ln[3]
  local reserved = redis.call('HINCRBY', pos_key(sku, loc), 'reserved', qty)
  redis.call('ZADD', holds_key(sku, loc), expires_at, id)
  emit('held', sku, loc, { 'res', id, 'ch', channel, 'qty', qty, 'd_on_hand', 0,
    'd_reserved', qty, 'on_hand', on_hands[i], 'reserved', reserved, 'exp', expires_at,
    'cref', customer_ref, 'lines', lines_json, 'fp', fp })
end
return { 'ok', 1, NOW, expires_at }
