-- rebuild.lua: restore one SKU's state from the ledger (after Redis went back in time) and
-- lift its write freeze. Positions, active holds, seq and the as-of delta history are
-- replaced by what the ledger holds; reservations of the SKU that the ledger says are
-- terminal lose their holds here.
--
-- ARGV[3] sku   ARGV[4] seq (the ledger's highest seq for the SKU)
-- ARGV[5] positions JSON [[loc, on_hand, reserved, safety, count_as_of_ms_or_0,
--                         [[at_ms, seq, delta], ...]], ...]
-- ARGV[6] active reservations JSON [{id, fp, channel, state, lines, created_at, updated_at,
--                                    expires_at (0 = none), customer_ref, at_risk}, ...]
--
-- Returns {'ok', positions, reservations}

local sku = ARGV[3]
local seq = tonumber(ARGV[4])
local positions = cjson.decode(ARGV[5])
local reservations = cjson.decode(ARGV[6])

-- Drop every hold index of the SKU; the ledger's active reservations re-create them.
for _, loc in ipairs(redis.call('SMEMBERS', sku_locs_key(sku))) do
  for _, id in ipairs(redis.call('ZRANGE', holds_key(sku, loc), 0, -1)) do
    redis.call('ZREM', P .. 'active', id)
  end
  redis.call('DEL', holds_key(sku, loc))
end

for _, p in ipairs(positions) do
  local loc, on_hand, reserved, safety, count_as_of, deltas = p[1], p[2], p[3], p[4], p[5], p[6]
  local pk = pos_key(sku, loc)
  redis.call('DEL', pk, deltas_key(sku, loc))
  redis.call('HSET', pk, 'on_hand', on_hand, 'reserved', reserved, 'safety', safety)
  if count_as_of > 0 then redis.call('HSET', pk, 'count_as_of', count_as_of) end
  for _, d in ipairs(deltas) do
    redis.call('ZADD', deltas_key(sku, loc), d[1], d[2] .. ':' .. d[3])
  end
  redis.call('SADD', sku_locs_key(sku), loc)
end

for _, r in ipairs(reservations) do
  local rk = res_key(r.id)
  redis.call('DEL', rk)
  local expires_at = ''
  if r.expires_at > 0 then expires_at = r.expires_at end
  redis.call('HSET', rk, 'fp', r.fp, 'channel', r.channel, 'state', r.state,
    'lines', cjson.encode(r.lines), 'created_at', r.created_at, 'updated_at', r.updated_at,
    'expires_at', expires_at, 'customer_ref', r.customer_ref, 'h:' .. r.state, r.updated_at)
  if r.at_risk then redis.call('HSET', rk, 'at_risk', '1') end
  set_deadline(r.id, rk, r.lines, expires_at)
end

redis.call('HSET', P .. 'seq', sku, seq)
redis.call('SREM', P .. 'regressed', sku)
for _, p in ipairs(positions) do
  emit('rebuilt', sku, p[1], { 'd_on_hand', 0, 'd_reserved', 0, 'on_hand', p[2],
    'reserved', p[3] })
end
return { 'ok', #positions, #reservations }
