-- rebuild.lua: restore one SKU's state from the ledger (after Redis went back in time) and
-- lift its write freeze. Positions (with their buckets beyond the shelf and arrivals), active
-- holds, seq and the as-of delta history are replaced by what the ledger holds; reservations
-- of the SKU that the ledger says are terminal lose their holds here; the SKU's lines of
-- transfers and returns are merged into those records (they span SKUs: each SKU's rebuild
-- brings its own line; docs/ledger-buckets.md).
--
-- ARGV[3] sku   ARGV[4] seq (the ledger's highest seq for the SKU)
-- ARGV[5] positions JSON [[loc, on_hand, reserved, safety, count_as_of_ms_or_0,
--                         [[at_ms, seq, delta], ...], damaged, quality_control,
--                         in_transit], ...]
-- ARGV[6] active reservations JSON [{id, fp, channel, state, lines, created_at, updated_at,
--                                    expires_at (0 = none), customer_ref, at_risk,
--                                    code, key}, ...]
--
-- ARGV[7] finished reservations JSON [{id, state, updated_at}, ...]: terminal in the ledger;
--         a stale active copy in Redis is closed (indexes dropped, units not touched: the
--         positions above already hold the ledger's numbers)
-- ARGV[8] idempotency records JSON [[source, source_event_id, fp, applied, on_hand, reserved,
--         safety, seq], ...] of the SKU's stock changes, so a retry is not applied twice
-- ARGV[9] arrivals JSON [[loc, [field, value, ...]], ...]: every location of the SKU in the
--         ledger, each arrivals hash replaced (an empty list deletes it)
-- ARGV[10] transfer lines JSON [{id, from, to, state, shipped, received, exp, created_at,
--          updated_at, fp}, ...]: this SKU's line of each transfer, and its state
-- ARGV[11] return lines JSON [{id, res, created_at, actor, fp, lines: [[sku, loc, qty,
--          disposition], ...]}, ...]: this SKU's lines of each return kept for the retention
-- ARGV[12] returned units JSON [{res, units, ids: [return id, ...]}, ...]: per reservation,
--          this SKU's units returned in all
--
-- Returns {'ok', positions, reservations}

local sku = ARGV[3]
local seq = tonumber(ARGV[4])
local positions = cjson.decode(ARGV[5])
local reservations = cjson.decode(ARGV[6])
local finished = cjson.decode(ARGV[7])
local idempotency = cjson.decode(ARGV[8])
local arrivals = cjson.decode(ARGV[9])
local transfers = cjson.decode(ARGV[10])
local returns = cjson.decode(ARGV[11])
local returned = cjson.decode(ARGV[12])

-- Drop every hold index of the SKU; the ledger's active reservations re-create them.
for _, loc in ipairs(redis.call('SMEMBERS', sku_locs_key(sku))) do
  for _, id in ipairs(redis.call('ZRANGE', holds_key(sku, loc), 0, -1)) do
    redis.call('ZREM', ACTIVE_KEY, id)
  end
  redis.call('DEL', holds_key(sku, loc))
  redis.call('ZREMRANGEBYLEX', ages_key(loc), '[' .. sku .. ':', '(' .. sku .. ';')
end

for _, p in ipairs(positions) do
  local loc, on_hand, reserved, safety, count_as_of, deltas = p[1], p[2], p[3], p[4], p[5], p[6]
  local pk = pos_key(sku, loc)
  redis.call('DEL', pk, deltas_key(sku, loc))
  local fields = { ON_HAND, on_hand }
  if reserved ~= 0 then table.insert(fields, RESERVED); table.insert(fields, reserved) end
  if safety ~= 0 then table.insert(fields, SAFETY); table.insert(fields, safety) end
  if count_as_of > 0 then table.insert(fields, COUNT_AS_OF); table.insert(fields, count_as_of) end
  for i, field in ipairs({ DAMAGED, QUALITY_CONTROL, IN_TRANSIT }) do
    local units = p[6 + i]
    if units ~= 0 then table.insert(fields, field); table.insert(fields, units) end
  end
  redis.call('HSET', pk, unpack(fields))
  for _, d in ipairs(deltas) do
    redis.call('ZADD', deltas_key(sku, loc), d[1], d[2] .. ':' .. d[3])
  end
  redis.call('SADD', sku_locs_key(sku), loc)
end

for _, a in ipairs(arrivals) do
  local ak = arrivals_key(sku, a[1])
  redis.call('DEL', ak)
  if #a[2] > 0 then redis.call('HSET', ak, unpack(a[2])) end
end

for _, r in ipairs(reservations) do
  local rk = res_key(r.id)
  local stale = redis.call('HMGET', rk, 'state', 'lines')
  if stale[1] then drop_indexes(r.id, rk, cjson.decode(stale[2])) end
  redis.call('DEL', rk)
  local expires_at = ''
  if r.expires_at > 0 then expires_at = r.expires_at end
  redis.call('HSET', rk, 'fp', r.fp, 'channel', r.channel, 'state', r.state,
    'lines', cjson.encode(r.lines), 'created_at', r.created_at, 'updated_at', r.updated_at,
    'expires_at', expires_at, 'customer_ref', r.customer_ref, 'h:' .. r.state, r.updated_at)
  if r.at_risk then
    redis.call('HSET', rk, 'at_risk', '1')
  end
  local code, key_id = r.code or '', r.key or ''
  redis.call('HSET', rk, 'code', code, 'key', key_id)
  if code ~= '' then redis.call('SET', code_key(code), r.id) end
  set_deadline(r.id, rk, r.lines, expires_at) -- and every index of active reservations
end

redis.call('HSET', SEQ_KEY, sku, seq)
redis.call('SREM', REGRESSED_KEY, sku)
for _, p in ipairs(positions) do
  emit('rebuilt', sku, p[1], { 'd_on_hand', 0, 'd_reserved', 0, 'on_hand', p[2],
    'reserved', p[3], 'damaged', p[7], 'quality_control', p[8], 'in_transit', p[9] })
end
for _, r in ipairs(finished) do
  local rk = res_key(r.id)
  local current = redis.call('HMGET', rk, 'state', 'lines')
  if ACTIVE[current[1]] then
    local lines = cjson.decode(current[2])
    unindex(r.id, rk, lines)
    for _, ln in ipairs(lines) do redis.call('ZREM', holds_key(ln[1], ln[2]), r.id) end
    redis.call('ZREM', ACTIVE_KEY, r.id)
    redis.call('HSET', rk, 'state', r.state, 'updated_at', r.updated_at, 'expires_at', '',
      'h:' .. r.state, r.updated_at, 'events', '')
    redis.call('EXPIRE', rk, RETENTION)
  end
end

for _, rec in ipairs(idempotency) do
  local ik = idem_key(rec[1], rec[2])
  if redis.call('EXISTS', ik) == 0 then
    store_idempotency(ik, rec[3], rec[4], rec[5], rec[6], rec[7], rec[8])
  end
end

-- A record's lines of this SKU replaced by the ledger's, where the first of them was (the
-- others stay: their SKUs' rebuilds bring theirs). Its fingerprint stays when Redis still has
-- the record; a record only the ledger knows gets the one its events carry ('' when none: a
-- retry is then refused as a conflict, never applied twice).
local function merged_lines(key, new_lines)
  local lines, placed, held = {}, false, redis.call('HGET', key, 'lines')
  local function place()
    for _, ln in ipairs(new_lines) do table.insert(lines, ln) end
    placed = true
  end
  for _, ln in ipairs(held and cjson.decode(held) or {}) do
    if ln[1] ~= sku then
      table.insert(lines, ln)
    elseif not placed then
      place()
    end
  end
  if not placed then place() end
  return cjson.encode(lines)
end
local TRANSFER_ENDED = { received = true, cancelled = true }

for _, t in ipairs(transfers) do
  local tk = transfer_key(t.id)
  local known = redis.call('EXISTS', tk) == 1
  local lines = merged_lines(tk, { { sku, t.shipped, t.received } })
  redis.call('HSET', tk, 'from', t.from, 'to', t.to, 'state', t.state, 'lines', lines,
    'expected_at', t.exp, 'created_at', t.created_at, 'updated_at', t.updated_at)
  if not known then redis.call('HSET', tk, 'fp', t.fp, 'supply', '') end
  if TRANSFER_ENDED[t.state] then
    redis.call('EXPIRE', tk, RETENTION)
  else
    redis.call('PERSIST', tk)
  end
  redis.call('ZADD', loc_transfers_key(t.from), t.created_at, t.id)
  redis.call('ZADD', loc_transfers_key(t.to), t.created_at, t.id)
end

for _, r in ipairs(returns) do
  local rk = return_key(r.id)
  local known = redis.call('EXISTS', rk) == 1
  redis.call('HSET', rk, 'reservation_id', r.res, 'created_at', r.created_at,
    'lines', merged_lines(rk, r.lines))
  if not known then redis.call('HSET', rk, 'fp', r.fp, 'actor', r.actor) end
  redis.call('EXPIRE', rk, RETENTION)
end

for _, u in ipairs(returned) do
  local uk = returned_key(u.res)
  local ids, seen = {}, {}
  for _, list in ipairs({ redis.call('HGET', uk, 'ids') or '', table.concat(u.ids, ',') }) do
    for id in string.gmatch(list, '[^,]+') do
      if not seen[id] then seen[id] = true; table.insert(ids, id) end
    end
  end
  redis.call('HSET', uk, sku, u.units, 'ids', table.concat(ids, ','))
  redis.call('EXPIRE', uk, RETENTION)
end

return { 'ok', #positions, #reservations }
