-- set_count.lua: apply an absolute physical count (DESIGN rule 7).
--
-- ARGV[3] sku   ARGV[4] location_id   ARGV[5] counted on_hand
-- ARGV[6] as_of in ms ('' = now)   ARGV[7] expected_on_hand ('' = no compare-and-set)
-- ARGV[8] safety_stock ('' = unchanged)   ARGV[9] source   ARGV[10] source_event_id ('' = none)
-- ARGV[11] request fingerprint
--
-- on_hand becomes count + the deltas that occurred after as_of. A count older than the newest
-- applied count (or older than the kept delta window) is recorded in the outbox, not applied.
--
-- Returns {'ok'|'replay', applied, on_hand, reserved, safety, seq, flagged}
--         {'unknown_location', loc} | {'idempotency_conflict'} | {'stock_regressed', sku} | {'on_hand_mismatch', on_hand}

local sku = ARGV[3]
local loc = ARGV[4]
local count = tonumber(ARGV[5])
local as_of_arg = ARGV[6]
local expected = ARGV[7]
local safety_arg = ARGV[8]
local source = ARGV[9]
local event_id = ARGV[10]
local fp = ARGV[11]

local ik = nil
if event_id ~= '' then ik = idem_key(source, event_id) end
local seen = check_stock_change(sku, loc, ik, fp)
if seen then return seen end
reap_position(sku, loc)

local on_hand, reserved, safety, count_as_of = read_position(sku, loc)
if expected ~= '' and tonumber(expected) ~= on_hand then
  return { 'on_hand_mismatch', on_hand }
end

local as_of = NOW
if as_of_arg ~= '' then as_of = math.min(tonumber(as_of_arg), NOW) end
if (count_as_of and as_of < tonumber(count_as_of)) or as_of < NOW - DELTA_WINDOW_MS then
  local seq = emit('count_stale', sku, loc, { 'fp', fp, 'count', count, 'as_of', as_of, 'src', source,
    'src_id', event_id, 'on_hand', on_hand, 'reserved', reserved })
  if ik then store_idempotency(ik, fp, 0, on_hand, reserved, safety, seq) end
  return { 'ok', 0, on_hand, reserved, safety, seq, 0 }
end

local after = 0
for _, m in ipairs(redis.call('ZRANGEBYSCORE', deltas_key(sku, loc), '(' .. as_of, '+inf')) do
  after = after + tonumber(string.match(m, ':(-?%d+)$'))
end
local new_on_hand = count + after
if safety_arg ~= '' then safety = tonumber(safety_arg) end
local pk = pos_key(sku, loc)
-- reserved is not the count's to change; safety is written only when given (absent = 0)
if safety_arg ~= '' and safety ~= 0 then
  redis.call('HSET', pk, ON_HAND, new_on_hand, COUNT_AS_OF, as_of, SAFETY, safety)
else
  redis.call('HSET', pk, ON_HAND, new_on_hand, COUNT_AS_OF, as_of)
  if safety_arg ~= '' then redis.call('HDEL', pk, SAFETY) end
end
redis.call('SADD', sku_locs_key(sku), loc)
redis.call('ZREMRANGEBYSCORE', deltas_key(sku, loc), '-inf', as_of)
local seq = emit('counted', sku, loc, { 'fp', fp, 'count', count, 'as_of', as_of, 'src', source,
  'src_id', event_id, 'd_on_hand', new_on_hand - on_hand, 'd_reserved', 0,
  'on_hand', new_on_hand, 'reserved', reserved, 'safety', safety })

local flagged = 0
if new_on_hand < on_hand and new_on_hand < reserved then
  flagged = flag_at_risk(sku, loc, reserved - new_on_hand)
end
if ik then store_idempotency(ik, fp, 1, new_on_hand, reserved, safety, seq) end
return { 'ok', 1, new_on_hand, reserved, safety, seq, flagged }
