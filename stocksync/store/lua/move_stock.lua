-- move_stock.lua: move units of a position between its buckets (on_hand, damaged,
-- quality_control), or write them off (they leave the books), idempotent by (source,
-- source_event_id) like adjust.lua. An inspection's outcome, a unit found damaged on the shelf.
--
-- ARGV[3] sku   ARGV[4] location_id   ARGV[5] qty (> 0)
-- ARGV[6] from: on_hand | damaged | quality_control
-- ARGV[7] to: on_hand | damaged | quality_control | written_off (never ARGV[6])
-- ARGV[8] reason   ARGV[9] source   ARGV[10] source_event_id   ARGV[11] fingerprint
-- ARGV[12] occurred_at in ms ('' = now): when a source (a connector) says the move happened
--
-- The source bucket must hold the units: for on_hand that is the physical count, not
-- `available` (a unit found broken on the shelf is gone whatever holds promise). A move out of
-- on_hand that leaves fewer units on hand than are reserved flags holds at risk there, newest
-- first (DESIGN rule 8), after due holds at the position were reaped.
--
-- As-of rule (DESIGN rule 7), as for a delta: the move's on_hand side is recorded at
-- occurred_at, and one that occurred at or before the newest applied count is already in that
-- count's on_hand: only its other side is applied ('applied' 0 when that leaves nothing, a
-- move written off).
--
-- Returns {'ok'|'replay', applied, on_hand, reserved, safety, seq, flagged, damaged,
--          quality_control, in_transit, arrivals}: the position after the move (a replay: as
--          it was after the original), arrivals as _lib.lua's arrivals_text
--         {'unknown_location', loc} | {'idempotency_conflict'} | {'stock_regressed', sku}
--         | {'insufficient_units', bucket, units in it}

local sku = ARGV[3]
local loc = ARGV[4]
local qty = tonumber(ARGV[5])
local from = ARGV[6]
local to = ARGV[7]
local reason = ARGV[8]
local source = ARGV[9]
local event_id = ARGV[10]
local fp = ARGV[11]
local occurred = occurred_at(ARGV[12])

local ik = idem_key(source, event_id)
local seen = check_stock_change(sku, loc, ik, fp)
if seen then
  if seen[1] == 'replay' then
    local rec = redis.call('HMGET', ik, 'flagged', 'd', 'q', 't', 'arr')
    seen[7] = num(rec[1])
    for i = 2, 4 do table.insert(seen, num(rec[i])) end
    table.insert(seen, rec[5] or '')
  end
  return seen
end

local from_field, to_field = BUCKET_FIELD[from], BUCKET_FIELD[to] -- to: nil when written off
local count_as_of = select(4, read_position(sku, loc))
local counted = count_as_of and occurred < NOW and occurred <= tonumber(count_as_of)
local take = not (counted and from_field == ON_HAND) -- else the count took them off on_hand
local put = to_field and not (counted and to_field == ON_HAND)
if take then
  local have = num(redis.call('HGET', pos_key(sku, loc), from_field))
  if have < qty then return { 'insufficient_units', from, have } end
end

-- Checked; now the writes.
reap_position(sku, loc)
local d = {}
if take then
  d[from_field] = -qty
  add_units(sku, loc, from_field, -qty)
end
if put then
  d[to_field] = qty
  add_units(sku, loc, to_field, qty)
end
local applied = (take or put) and 1 or 0
redis.call('SADD', sku_locs_key(sku), loc)
local seq = emit_bucket_event('stock_moved', sku, loc, qty, d, { 'from', from,
  'to', to, 'reason', reason, 'src', source, 'src_id', event_id, 'fp', fp }, occurred)

local on_hand, reserved, safety = read_position(sku, loc)
local flagged = 0
if take and from_field == ON_HAND and on_hand < reserved then
  flagged = flag_at_risk(sku, loc, reserved - on_hand)
end
local damaged, qc, in_transit = read_buckets(sku, loc)
local arrivals = arrivals_text(sku, loc)
store_idempotency(ik, fp, applied, on_hand, reserved, safety, seq)
redis.call('HSET', ik, 'flagged', flagged, 'd', damaged, 'q', qc, 't', in_transit,
  'arr', arrivals)
return { 'ok', applied, on_hand, reserved, safety, seq, flagged, damaged, qc, in_transit,
  arrivals }
