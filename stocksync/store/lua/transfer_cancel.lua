-- transfer_cancel.lua: cancel a shipped transfer before its receipt. Its units leave the
-- target's in_transit and arrivals and go back to the source's on_hand. Cancelling it again is
-- a replay.
--
-- ARGV[3] transfer_id
-- ARGV[4] the caller's locations ('' = any, else '<loc>,<loc>,...'): a key must be bound to
--         the source; one bound to neither end does not see the transfer
--
-- Returns {'ok', 1|0 (0: cancelled before), 0, field, value, ...} the stored transfer
--         {'not_found'} | {'forbidden', loc} | {'invalid_transition', state}
--         {'stock_regressed', sku}
--         {'insufficient_units', 'in_transit', sku, loc, requested, in_transit}

local id = ARGV[3]
local allowed = allowed_locations(ARGV[4])

local xk = transfer_key(id)
local t = redis.call('HMGET', xk, 'from', 'to', 'state', 'lines')
local from, to, current = t[1], t[2], t[3]
if not from then return { 'not_found' } end
if allowed and not allowed[from] and not allowed[to] then return { 'not_found' } end
if allowed and not allowed[from] then return { 'forbidden', from } end
if current == TRANSFER.CANCELLED then return reply_transfer(0, 0, xk) end
if current ~= TRANSFER.SHIPPED then return { 'invalid_transition', current } end

-- Checks, all before the first write.
local lines = cjson.decode(t[4])
local regressed = regressed_sku(lines)
if regressed then return { 'stock_regressed', regressed } end
local refused = check_in_transit(lines, to)
if refused then return refused end

-- Writes.
local fields = { 'xfer', id, 'from', from, 'to', to }
for _, ln in ipairs(lines) do
  local sku, qty = ln[1], ln[2]
  add_to_position(sku, to, IN_TRANSIT, -qty)
  redis.call('HDEL', arrivals_key(sku, to), 't:' .. id)
  emit('transfer_cancelled', sku, to, bucket_fields(sku, to, fields, qty, 0, -qty))
  add_to_position(sku, from, ON_HAND, qty)
  local seq = emit('transfer_cancelled', sku, from, bucket_fields(sku, from, fields, qty, qty, 0))
  record_delta(sku, from, NOW, seq, qty)
end
redis.call('HSET', xk, 'state', TRANSFER.CANCELLED, 'updated_at', NOW)
end_transfer(xk, from, to)
return reply_transfer(1, 0, xk)
