-- sell.lua: a till sale, and the hold it names if any, in one call, idempotent by
-- (source, source_event_id). Reading the hold and fulfilling it in a second call lost the sale
-- whenever the hold was released or expired in between; a till cannot be refused (DESIGN
-- rule 8), so whatever the hold's fate, every unit of the sale leaves on_hand exactly once.
--
-- ARGV[3] sku   ARGV[4] location_id   ARGV[5] qty (units sold, > 0)
-- ARGV[6] reservation_id ('' = none)   ARGV[7] source   ARGV[8] source_event_id
-- ARGV[9] occurred_at in ms ('' = now)   ARGV[10] fingerprint
--
-- The named reservation covers the sale when it holds units of this sku at this location:
--   active    -> it is fulfilled (all its lines, as fulfill.lua does; the as-of rule applies
--                to a late report), and units beyond what it held are a plain sale;
--   fulfilled -> the units it held were sold then and are not taken again; units beyond it
--                are a plain sale. But the sale says when they left the shelf, in the till's
--                time, which is the time Square's counts know (DESIGN rule 7): the
--                fulfilment's on_hand delta is moved to the sale's time, so each count, taken
--                before or after the sale, is squared with the units once. A count already
--                missing them while on_hand still holds that delta (staff pressed "Collected"
--                once the count was in) gets the units back ('counted_twice'); a count that
--                replaced the delta but was taken before the sale still had them: taken now
--                ('sale').
-- A reservation that ended (released, expired), is unknown or holds none of this line covers
-- nothing: every unit is a plain sale. A plain sale is a negative delta with reason 'sale',
-- as adjust.lua applies it: never refused, holds there flagged at risk when units run short.
--
-- Returns {'ok'|'replay', applied, on_hand, reserved, safety, seq, flagged, hold, covered,
--          events}
--   applied    1 when the plain sale's units left on_hand; 0 when there were none, or when a
--              count taken after the sale already misses them (as-of rule)
--   on_hand, reserved, safety   the sale's position after it;  seq  the SKU's seq after it
--   hold       'fulfilled' (by this sale) | 'repeated' (fulfilled before) | '' (none covered)
--   covered    units of this line the reservation held (0 when hold is '')
--   events     the fulfilment's outbox events as finish() keeps them on the reservation
--              (JSON), to be written to the ledger
--              before the sale is acknowledged (again on a replay: a retry after the ledger
--              failed must still write them)
--         {'unknown_location', loc} | {'idempotency_conflict'} | {'stock_regressed', sku}

local sku = ARGV[3]
local loc = ARGV[4]
local qty = tonumber(ARGV[5])
local id = ARGV[6]
local source = ARGV[7]
local event_id = ARGV[8]
local occurred = occurred_at(ARGV[9])
local fp = ARGV[10]

local ik = idem_key(source, event_id)
local seen = check_stock_change(sku, loc, ik, fp)
if seen then
  if seen[1] == 'replay' then
    local rec = redis.call('HMGET', ik, 'hold', 'covered', 'events')
    table.insert(seen, rec[1] or ''); table.insert(seen, num(rec[2]))
    table.insert(seen, rec[3] or '')
  end
  return seen
end

-- Which units of the sale the reservation covers. Loading it reaps due holds at its
-- positions, so a hold whose deadline passed is expired here, before the sale, not after.
local rk, state, lines, regressed
local covered = 0
if id ~= '' then rk, state, lines, regressed = load_reservation(id) end
if rk and (ACTIVE[state] or state == 'fulfilled') then
  for _, ln in ipairs(lines) do
    if ln[1] == sku and ln[2] == loc then covered = covered + ln[3] end
  end
end
-- Fulfilling writes every line of the reservation: refused while one of them is frozen.
if covered > 0 and ACTIVE[state] and regressed then return { 'stock_regressed', regressed } end

-- What the earlier fulfilment did to this line: its on_hand delta, and that delta's entry in
-- the position's deltas while on_hand still holds it (a count applied after it, as of a time
-- at or after it, replaced it).
local function fulfilled_line(events)
  if events == '' then return nil end
  for _, ev in ipairs(cjson.decode(events)) do
    local f = {}
    for i = 1, #ev[2], 2 do f[ev[2][i]] = ev[2][i + 1] end
    if f.sku == sku and f.loc == loc then
      local took, event_seq = tonumber(f.d_on_hand) or 0, tonumber(f.seq)
      local member = event_seq and string.format('%d:%d', event_seq, took)
      if took < 0 and member and redis.call('ZSCORE', deltas_key(sku, loc), member) then
        return took, member
      end
      return took, nil
    end
  end
  return nil
end

local hold, sale_events = '', ''
local give_back, take = 0, 0
if covered > 0 then
  if ACTIVE[state] then
    finish(id, rk, lines, 'fulfilled', true, occurred)
    hold = 'fulfilled'
  else
    hold = 'repeated'
  end
  sale_events = redis.call('HGET', rk, 'events') or ''
  local counted = select(4, read_position(sku, loc))
  if hold == 'repeated' and counted then
    local took, delta = fulfilled_line(sale_events)
    -- as-of rule, as apply_delta decides it: the newest count already misses the sale's units
    local in_count = occurred < NOW and occurred <= tonumber(counted)
    if delta then
      redis.call('ZADD', deltas_key(sku, loc), 'XX', occurred, delta)
      if in_count then give_back = covered end
    elseif took and not in_count then
      take = covered
    end
  end
end

local applied, on_hand, reserved, safety, seq, flagged = 0, 0, 0, 0, 0, 0
if give_back > 0 then -- its delta now lies inside the count: on_hand no longer holds it
  on_hand, reserved = read_position(sku, loc)
  on_hand = redis.call('HINCRBY', pos_key(sku, loc), ON_HAND, give_back)
  seq = emit('adjusted', sku, loc, { 'delta', give_back, 'reason', 'counted_twice',
    'src', source, 'src_id', event_id, 'occurred_at', occurred, 'fp', fp,
    'd_on_hand', give_back, 'd_reserved', 0, 'on_hand', on_hand, 'reserved', reserved })
end
if take > 0 or qty > covered then
  local more
  applied, on_hand, reserved, safety, seq, more =
    apply_delta(sku, loc, covered - take - qty, 'sale', source, event_id, occurred, fp)
  flagged = flagged + more
else
  on_hand, reserved, safety = read_position(sku, loc)
  seq = num(redis.call('HGET', SEQ_KEY, sku))
end

store_idempotency(ik, fp, applied, on_hand, reserved, safety, seq)
redis.call('HSET', ik, 'hold', hold, 'covered', covered, 'events', sale_events)
return { 'ok', applied, on_hand, reserved, safety, seq, flagged, hold, covered, sale_events }
