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
local status, applied, on_hand, reserved, safety, seq, flagged =
  apply_count(sku, loc, count, as_of_arg, expected, safety_arg, source, event_id, fp, ik)
if status ~= 'ok' then return { status, applied } end
return { 'ok', applied, on_hand, reserved, safety, seq, flagged }
