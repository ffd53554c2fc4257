-- transfer_ship.lua: ship a transfer at once. Its units leave the source's on_hand and enter
-- the target's in_transit and arrivals ('t:<transfer_id>' with the expected time); idempotent
-- by transfer_id. Both locations are in this domain (the caller routes by them).
--
-- ARGV[3] transfer_id   ARGV[4] from location_id   ARGV[5] to location_id
-- ARGV[6] lines as JSON [[sku, qty], ...], each SKU once, sorted
-- ARGV[7] expected_at in ms ('' = not given)   ARGV[8] '1' = force, '' = not
-- ARGV[9] fingerprint of the request   ARGV[10] most arrivals a position may have
--
-- Due holds at the source positions are reaped before availability is read. Without force a
-- line ships only what is available (on_hand - reserved - safety); with force up to on_hand,
-- and holds the shipment leaves short of units are flagged at risk (DESIGN rule 8).
--
-- Returns {'ok', 1, at_risk, field, value, ...}   shipped now: the stored transfer
--         {'ok', 0, 0, field, value, ...}         a retry of the same shipment: the stored
--                                                 transfer, in whatever state it is now
--         {'idempotency_conflict'}                the id was used for another shipment
--         {'unknown_location', loc, ...} | {'stock_regressed', sku}
--         {'insufficient_stock', sku, loc, requested, available, ...}   (without force)
--         {'insufficient_units', 'on_hand', sku, loc, requested, on_hand}   (with force)
--         {'too_many_arrivals', sku, loc, limit}

local id = ARGV[3]
local from = ARGV[4]
local to = ARGV[5]
local lines = cjson.decode(ARGV[6])
local expected = ARGV[7]
local force = ARGV[8] == '1'
local fp = ARGV[9]
local max_arrivals = tonumber(ARGV[10])

local xk = transfer_key(id)
local prior = redis.call('HGET', xk, 'fp')
if prior then
  if prior ~= fp then return { 'idempotency_conflict' } end
  return reply_transfer(0, 0, xk)
end

-- Checks, all before the first write.
local missing = {}
for _, loc in ipairs({ from, to }) do
  if redis.call('EXISTS', loc_key(loc)) == 0 then table.insert(missing, loc) end
end
if #missing > 0 then
  table.insert(missing, 1, 'unknown_location')
  return missing
end
local regressed = regressed_sku(lines)
if regressed then return { 'stock_regressed', regressed } end

local short = {}
for _, ln in ipairs(lines) do
  local sku, qty = ln[1], ln[2]
  reap_position(sku, from)
  local on_hand, reserved, safety = read_position(sku, from)
  if force then
    if qty > on_hand then
      return { 'insufficient_units', 'on_hand', sku, from, qty, math.max(0, on_hand) }
    end
  else
    local available = on_hand - reserved - safety
    if qty > available and reap_for_line(sku, from, qty - available) > 0 then
      on_hand, reserved, safety = read_position(sku, from)
      available = on_hand - reserved - safety
    end
    if qty > available then
      for _, v in ipairs({ sku, from, qty, math.max(0, available) }) do table.insert(short, v) end
    end
  end
end
if #short > 0 then
  table.insert(short, 1, 'insufficient_stock')
  return short
end
for _, ln in ipairs(lines) do
  if not arrival_room(ln[1], to, 't:' .. id, max_arrivals) then
    return { 'too_many_arrivals', ln[1], to, max_arrivals }
  end
end

-- Writes.
local at_risk = 0
local fields = { 'xfer', id, 'from', from, 'to', to, 'exp', expected }
local stored = {}
for _, ln in ipairs(lines) do
  local sku, qty = ln[1], ln[2]
  local on_hand = add_to_position(sku, from, ON_HAND, -qty)
  local seq = emit('transfer_shipped', sku, from, bucket_fields(sku, from, fields, qty, -qty, 0))
  record_delta(sku, from, NOW, seq, -qty)
  local _, reserved = read_position(sku, from)
  if on_hand < reserved then at_risk = at_risk + flag_at_risk(sku, from, reserved - on_hand) end

  add_to_position(sku, to, IN_TRANSIT, qty)
  redis.call('HSET', arrivals_key(sku, to), 't:' .. id, arrival_value(qty, expected))
  redis.call('SADD', sku_locs_key(sku), to)
  emit('transfer_shipped', sku, to, bucket_fields(sku, to, fields, qty, 0, qty))
  table.insert(stored, { sku, qty, 0 })
end
redis.call('HSET', xk, 'fp', fp, 'from', from, 'to', to, 'state', TRANSFER.SHIPPED,
  'lines', cjson.encode(stored), 'expected_at', expected, 'created_at', NOW, 'updated_at', NOW,
  'supply', '')
for _, loc in ipairs({ from, to }) do
  redis.call('ZADD', loc_transfers_key(loc), NOW, id)
  trim_transfers(loc)
end
return reply_transfer(1, at_risk, xk)
