-- _arrivals.lua: helpers of the scripts that change a position's buckets beyond the shelf and
-- its arrivals (incoming supply, shipped transfers): set_incoming, remove_incoming, adjust,
-- stock_changes and the transfer scripts. Built on _lib.lua (keys, emit, reads).

-- An arrival's stored value (arrivals_key): '<qty>|<expected_at ms, or empty: not given>'.
local function arrival_value(qty, expected) return qty .. '|' .. (expected or '') end

local function parse_arrival(value)
  local sep = string.find(value, '|', 1, true)
  return tonumber(string.sub(value, 1, sep - 1)), string.sub(value, sep + 1)
end

-- Whether a position has room for the arrival `field` (one it has already, or one more while
-- it has fewer than `max`): every read of a position returns all its arrivals.
local function arrival_room(sku, loc, field, max)
  local ak = arrivals_key(sku, loc)
  return redis.call('HEXISTS', ak, field) == 1 or redis.call('HLEN', ak) < max
end

-- Add `delta` to a field of a position's hash; the field is deleted at 0 (absent = 0, so a
-- position stays a tiny listpack). Returns the new value.
local function add_to_position(sku, loc, field, delta)
  local pk = pos_key(sku, loc)
  local value = num(redis.call('HGET', pk, field)) + delta
  if value == 0 then
    redis.call('HDEL', pk, field)
  else
    redis.call('HSET', pk, field, value)
  end
  return value
end

-- A receipt that names an incoming supply consumes it: up to `units` (what arrived) of the
-- supply `supply_id` at the position leave it, and it is removed at 0, with an
-- incoming_consumed event ('by': 'adjust' | 'transfer'). A supply the position does not have
-- (delivered in full before, or removed) consumes nothing. Returns the units consumed.
local function consume_supply(sku, loc, supply_id, units, by)
  if supply_id == '' or units <= 0 then return 0 end
  local ak, field = arrivals_key(sku, loc), 's:' .. supply_id
  local value = redis.call('HGET', ak, field)
  if not value then return 0 end
  local qty, expected = parse_arrival(value)
  local used = math.min(units, qty)
  local left = qty - used
  if left == 0 then
    redis.call('HDEL', ak, field)
  else
    redis.call('HSET', ak, field, arrival_value(left, expected))
  end
  emit('incoming_consumed', sku, loc, { 'supply', supply_id, 'qty', used, 'left', left,
    'by', by })
  return used
end

-- The fields of a bucket event (domain.events.BUCKET_KINDS) at a position whose writes are
-- done: the event's own `fields`, 'qty', its deltas (d_on_hand, d_reserved = 0, d_in_transit
-- when not 0) and the five values after it. The caller records a d_on_hand that is not 0 with
-- record_delta (as-of rule).
local function bucket_fields(sku, loc, fields, qty, d_on_hand, d_in_transit)
  local on_hand, reserved = read_position(sku, loc)
  local damaged, qc, in_transit = read_buckets(sku, loc)
  local out = { unpack(fields) }
  for _, v in ipairs({ 'qty', qty, 'd_on_hand', d_on_hand, 'd_reserved', 0 }) do
    table.insert(out, v)
  end
  if d_in_transit ~= 0 then
    table.insert(out, 'd_in_transit'); table.insert(out, d_in_transit)
  end
  for _, v in ipairs({ 'on_hand', on_hand, 'reserved', reserved, 'damaged', damaged,
    'quality_control', qc, 'in_transit', in_transit }) do table.insert(out, v) end
  return out
end
