-- transfer_receive.lua: receive a shipped transfer at its target. The units that arrived
-- enter on_hand, the whole shipment leaves in_transit and the arrivals (what did not arrive
-- leaves the books with it: a transfer_shortfall event says how much), and a named incoming
-- supply is consumed by what arrived at each position. Repeating the same receipt is a replay.
--
-- ARGV[3] transfer_id
-- ARGV[4] the receipt as JSON [[sku, qty], ...], each SKU once (a shipped SKU not named is
--         received 0)
-- ARGV[5] supply_id the receipt consumes ('' = none)
-- ARGV[6] the caller's locations ('' = any, else '<loc>,<loc>,...'): a key must be bound to
--         the target; one bound to neither end does not see the transfer
--
-- Returns {'ok', 1|0 (0: the same receipt again), 0, field, value, ...} the stored transfer
--         {'not_found'} | {'forbidden', loc} | {'invalid_transition', state}
--         {'receive_exceeds_shipped', sku, shipped, requested} | {'stock_regressed', sku}
--         {'insufficient_units', 'in_transit', sku, loc, requested, in_transit}

local id = ARGV[3]
local receipt = cjson.decode(ARGV[4])
local supply = ARGV[5]
local allowed = allowed_locations(ARGV[6])

local xk = transfer_key(id)
local t = redis.call('HMGET', xk, 'from', 'to', 'state', 'lines', 'supply')
local from, to, current = t[1], t[2], t[3]
if not from then return { 'not_found' } end
if allowed and not allowed[from] and not allowed[to] then return { 'not_found' } end
if allowed and not allowed[to] then return { 'forbidden', to } end
local lines = cjson.decode(t[4])

local asked = {}
for _, r in ipairs(receipt) do asked[r[1]] = r[2] end

-- The same receipt again is a replay; any other after it is refused.
if current == TRANSFER.RECEIVED then
  local same = (t[5] or '') == supply
  local shipped = {}
  for _, ln in ipairs(lines) do
    shipped[ln[1]] = true
    if (asked[ln[1]] or 0) ~= ln[3] then same = false end
  end
  for _, r in ipairs(receipt) do
    if not shipped[r[1]] then same = false end
  end
  if same then return reply_transfer(0, 0, xk) end
  return { 'invalid_transition', current }
end
if current ~= TRANSFER.SHIPPED then return { 'invalid_transition', current } end

-- Checks, all before the first write.
local shipped = {}
for _, ln in ipairs(lines) do shipped[ln[1]] = ln[2] end
for _, r in ipairs(receipt) do
  if not shipped[r[1]] or r[2] > shipped[r[1]] then
    return { 'receive_exceeds_shipped', r[1], shipped[r[1]] or 0, r[2] }
  end
end
local regressed = regressed_sku(lines)
if regressed then return { 'stock_regressed', regressed } end
local refused = check_in_transit(lines, to)
if refused then return refused end

-- Writes.
for _, ln in ipairs(lines) do
  local sku, qty = ln[1], ln[2]
  local received = asked[sku] or 0
  add_to_position(sku, to, IN_TRANSIT, -qty)
  if received > 0 then add_to_position(sku, to, ON_HAND, received) end
  redis.call('HDEL', arrivals_key(sku, to), 't:' .. id)
  local seq = emit('transfer_received', sku, to,
    bucket_fields(sku, to, { 'xfer', id, 'shipped', qty }, received, received, -qty))
  if received > 0 then record_delta(sku, to, NOW, seq, received) end
  if received < qty then
    emit('transfer_shortfall', sku, to, bucket_fields(sku, to, { 'xfer', id }, qty - received,
      0, 0))
  end
  consume_supply(sku, to, supply, received, 'transfer')
  ln[3] = received
end
redis.call('HSET', xk, 'state', TRANSFER.RECEIVED, 'lines', cjson.encode(lines),
  'updated_at', NOW, 'supply', supply)
end_transfer(xk, from, to)
return reply_transfer(1, 0, xk)
