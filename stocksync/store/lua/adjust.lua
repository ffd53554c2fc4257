-- adjust.lua: apply a physical delta (sale, receipt, damage, ...), idempotent by
-- (source, source_event_id). A till cannot be refused (DESIGN rule 8): a negative delta is
-- applied even when it drives availability below zero; when fewer units are left on hand than
-- are reserved, holds there are flagged at risk.
--
-- ARGV[3] sku   ARGV[4] location_id   ARGV[5] delta   ARGV[6] reason   ARGV[7] source
-- ARGV[8] source_event_id   ARGV[9] occurred_at in ms ('' = now)   ARGV[10] fingerprint
-- ARGV[11] supply_id ('' = none): a positive delta applied (a receipt) consumes that incoming
--          supply at the position, up to the units received (consume_supply, _arrivals.lua)
--
-- A delta that occurred at or before the newest applied count is already in that count: it is
-- recorded in the outbox, not applied (`apply_delta` in _lib.lua).
--
-- Returns {'ok'|'replay', applied, on_hand, reserved, safety, seq, flagged}
--         {'unknown_location', loc} | {'idempotency_conflict'} | {'stock_regressed', sku}

local sku = ARGV[3]
local loc = ARGV[4]
local delta = tonumber(ARGV[5])
local reason = ARGV[6]
local source = ARGV[7]
local event_id = ARGV[8]
local occurred = occurred_at(ARGV[9])
local fp = ARGV[10]
local supply = ARGV[11]

local ik = idem_key(source, event_id)
local seen = check_stock_change(sku, loc, ik, fp)
if seen then return seen end

local applied, on_hand, reserved, safety, seq, flagged =
  apply_delta(sku, loc, delta, reason, source, event_id, occurred, fp)
if applied == 1 and delta > 0 then consume_supply(sku, loc, supply, delta, 'adjust') end
store_idempotency(ik, fp, applied, on_hand, reserved, safety, seq)
return { 'ok', applied, on_hand, reserved, safety, seq, flagged }
