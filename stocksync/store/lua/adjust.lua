-- adjust.lua: apply a physical delta (sale, receipt, damage, ...), idempotent by
-- (source, source_event_id). A till cannot be refused (DESIGN rule 8): a negative delta is
-- applied even when it drives availability below zero; when fewer units are left on hand than
-- are reserved, holds there are flagged at risk.
--
-- ARGV[3] sku   ARGV[4] location_id   ARGV[5] delta   ARGV[6] reason   ARGV[7] source
-- ARGV[8] source_event_id   ARGV[9] occurred_at in ms ('' = now)   ARGV[10] fingerprint
--
-- A delta that occurred at or before the newest applied count is already in that count: it is
-- recorded in the outbox, not applied. A delta happening now (no occurred_at, or one clamped to
-- now) is never stale: scripts run one at a time, so it came after any count already applied,
-- even one whose as_of is this same millisecond.
--
-- Returns {'ok'|'replay', applied, on_hand, reserved, safety, seq, flagged}
--         {'unknown_location', loc} | {'idempotency_conflict'} | {'stock_regressed', sku}

local sku = ARGV[3]
local loc = ARGV[4]
local delta = tonumber(ARGV[5])
local reason = ARGV[6]
local source = ARGV[7]
local event_id = ARGV[8]
local occurred_arg = ARGV[9]
local fp = ARGV[10]

if redis.call('EXISTS', loc_key(loc)) == 0 then return { 'unknown_location', loc } end
if regressed_sku({ { sku } }) then return { 'stock_regressed', sku } end
local ik = idem_key(source, event_id)
local seen = check_idempotency(ik, fp)
if seen then return seen end
reap_position(sku, loc)

local on_hand, reserved, safety, count_as_of = read_position(sku, loc)
local occurred = NOW
if occurred_arg ~= '' then occurred = math.min(tonumber(occurred_arg), NOW) end
local event = { 'delta', delta, 'reason', reason, 'src', source, 'src_id', event_id,
  'occurred_at', occurred, 'fp', fp }

if count_as_of and occurred < NOW and occurred <= tonumber(count_as_of) then
  table.insert(event, 'on_hand'); table.insert(event, on_hand)
  table.insert(event, 'reserved'); table.insert(event, reserved)
  local seq = emit('adjust_stale', sku, loc, event)
  store_idempotency(ik, fp, 0, on_hand, reserved, safety, seq)
  return { 'ok', 0, on_hand, reserved, safety, seq, 0 }
end

local pk = pos_key(sku, loc)
local new_on_hand = redis.call('HINCRBY', pk, 'on_hand', delta)
redis.call('SADD', sku_locs_key(sku), loc)
for _, v in ipairs({ 'd_on_hand', delta, 'd_reserved', 0, 'on_hand', new_on_hand,
  'reserved', reserved }) do table.insert(event, v) end
local seq = emit('adjusted', sku, loc, event)
record_delta(sku, loc, occurred, seq, delta)

local flagged = 0
if delta < 0 and new_on_hand < reserved then
  flagged = flag_at_risk(sku, loc, reserved - new_on_hand)
end
store_idempotency(ik, fp, 1, new_on_hand, reserved, safety, seq)
return { 'ok', 1, new_on_hand, reserved, safety, seq, flagged }
