-- stock_changes.lua: many counts and deltas of one source in one call (bulk imports, polled
-- pages). Each row is applied in order exactly as set_count.lua or adjust.lua applies it alone:
-- its own checks, as-of rule, idempotency record by (source, source_event_id) and outbox event,
-- and its own refusal, which leaves the other rows alone. Not one transaction: a row is final
-- once applied, so a call re-sent after a lost reply replays the rows it had applied.
--
-- ARGV[3] source, then ROW_FIELDS values per row:
--   kind ('c' count | 'a' delta), sku, location_id, value (the count or the delta),
--   at in ms (a count's as_of, a delta's occurred_at; '' = now), reason ('' for a count),
--   source_event_id ('' = none: counts only), fingerprint, supply_id ('' = none; a delta
--   applied that adds units consumes that incoming supply at the position, as adjust.lua)
-- The caller bounds the rows per call (a call runs alone on the server).
--
-- Returns { codes, seq, seq, ... }: codes is one character per row,
--   'a' applied, 's' stale (recorded, not applied), 'd' duplicate (replayed: nothing changed),
--   'L' unknown location, 'C' idempotency conflict, 'R' stock regressed (the SKU is frozen);
-- then one seq per row (its event's; a replay's original's; 0 for a refusal). A refusal's
-- details are the row's own (its location, its SKU).

local ROW_FIELDS = 9
local source = ARGV[3]
local first, last = 4, NARGS - ROW_FIELDS + 1

-- What no row changes, read once for all of them (a few commands per call, not per row):
-- which locations exist (upsert_location.lua writes the set with the hash), which SKUs are
-- frozen, and whether any hold in the namespace is due (none: no position needs reaping).
local locs, skus = {}, {}
for i = first, last, ROW_FIELDS do
  skus[#skus + 1] = ARGV[i + 1]
  locs[#locs + 1] = ARGV[i + 2]
end
local known, frozen = {}, {}
if #locs > 0 then
  local found = redis.call('SMISMEMBER', LOCATIONS_KEY, unpack(locs))
  for k, loc in ipairs(locs) do known[loc] = found[k] == 1 end
  found = redis.call('SMISMEMBER', REGRESSED_KEY, unpack(skus))
  for k, sku in ipairs(skus) do frozen[sku] = found[k] == 1 end
end
local none_due = #redis.call('ZRANGEBYSCORE', ACTIVE_KEY, '-inf', NOW, 'LIMIT', 0, 1) == 0

local codes, seqs = {}, {}
for i = first, last, ROW_FIELDS do
  local kind, sku, loc, value = ARGV[i], ARGV[i + 1], ARGV[i + 2], tonumber(ARGV[i + 3])
  local at, reason, event_id, fp = ARGV[i + 4], ARGV[i + 5], ARGV[i + 6], ARGV[i + 7]
  local supply = ARGV[i + 8]
  local code, seq = nil, 0

  local ik = nil
  if event_id ~= '' then ik = idem_key(source, event_id) end
  if not known[loc] then
    code = 'L'
  elseif frozen[sku] then
    code = 'R'
  elseif ik then
    local seen = check_idempotency(ik, fp)
    if seen and seen[1] == 'replay' then
      code, seq = 'd', seen[6]
    elseif seen then
      code = 'C'
    end
  end

  if code == nil then
    local applied, on_hand, reserved, safety
    if kind == 'c' then
      if not none_due then reap_position(sku, loc) end
      local _
      _, applied, _, _, _, seq = apply_count(sku, loc, value, at, '', '', source, event_id, fp, ik)
    else
      applied, on_hand, reserved, safety, seq = apply_delta(sku, loc, value, reason, source,
        event_id, occurred_at(at), fp, none_due)
      store_idempotency(ik, fp, applied, on_hand, reserved, safety, seq)
      if applied == 1 and value > 0 then consume_supply(sku, loc, supply, value, 'adjust') end
    end
    code = applied == 1 and 'a' or 's'
  end
  codes[#codes + 1] = code
  seqs[#seqs + 1] = seq
end

table.insert(seqs, 1, table.concat(codes))
return seqs
