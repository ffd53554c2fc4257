-- move_location.lua: one step of moving a location to another stock domain (the explicit,
-- offline move of `stocksync domains move-location`; the order of the steps and why each can
-- be re-run after a crash is in stocksync/store/domain_moves.py). A move spans two slots, so
-- it cannot be one script: each step is one call on one domain, checks before it writes, and
-- answers 'ok' again (changing nothing) when it already ran.
--
-- ARGV[3] step   ARGV[4] location_id   then per step:
--   seal   (source) ARGV[5] target domain. Refused while the location has active holds;
--          otherwise its record goes to moving_key (with 'to'), out of `locations` and GEO:
--          from now on every stock change and new position there answers unknown_location.
--          Refused too while a transfer from or to it is on its way (its other end stays in
--          this domain: receive or cancel it first).
--          Returns {'ok', sealed now 1|0} | {'active_holds', n} | {'unknown_location', loc}
--          | {'moving_elsewhere', domain} | {'open_transfers', n}
--   park   (source) ARGV[5] target domain, ARGV[6…] SKUs. Each position leaves the domain
--          (a position_moved_out event: its units, on_hand, damaged and quality_control, out of
--          this domain's ledger) into parked_key, with its incoming supplies. Returns {'ok', parked} | {'active_holds', sku} | {'stock_regressed', sku}
--          | {'not_sealed', loc}
--   import (target) ARGV[5] source domain, ARGV[6] JSON [[sku, parked JSON], …]. Each position
--          not yet here is written (a position_moved_in event: its units into this domain's
--          ledger, with this domain's seq). Returns {'ok', imported} | {'stock_regressed', sku}
--   unpark (source) ARGV[5…] SKUs the target has: dropped from parked_key. Returns {'ok', n}
--   open   (target) ARGV[5] source domain, ARGV[6…] the record's field/value pairs: the
--          location exists here (a location_upserted event). Returns {'ok', created 1|0}
--   close  (source) the sealed record and the location's empty indexes go.
--          Returns {'ok', closed 1|0} | {'parked', n}

local step, loc = ARGV[3], ARGV[4]
local mk, pk = moving_key(loc), parked_key(loc)

local function args_from(first)
  local out = {}
  for i = first, NARGS do table.insert(out, ARGV[i]) end
  return out
end

-- Transfers from or to the location still on their way.
local function open_transfers()
  local n = 0
  for _, id in ipairs(redis.call('ZRANGE', loc_transfers_key(loc), 0, -1)) do
    if redis.call('HGET', transfer_key(id), 'state') == TRANSFER.SHIPPED then n = n + 1 end
  end
  return n
end

-- Active reservations with a line at the location, after ending those already due.
local function active_holds()
  local n = 0
  for state in pairs(ACTIVE) do
    local key = locstate_key(loc, state)
    reap_ordered(key, REAP_PER_CALL)
    n = n + redis.call('ZCARD', key)
  end
  return n
end

if step == 'seal' then
  local to = ARGV[5]
  local sealed = redis.call('HGET', mk, 'to')
  if sealed then
    if sealed == to then return { 'ok', 0 } end
    return { 'moving_elsewhere', sealed }
  end
  local lk = loc_key(loc)
  if redis.call('EXISTS', lk) == 0 then return { 'unknown_location', loc } end
  local holds = active_holds()
  if holds > 0 then return { 'active_holds', holds } end
  local transfers = open_transfers()
  if transfers > 0 then return { 'open_transfers', transfers } end
  redis.call('HSET', mk, 'to', to, unpack(redis.call('HGETALL', lk)))
  redis.call('DEL', lk)
  redis.call('SREM', LOCATIONS_KEY, loc)
  redis.call('ZREM', GEO_KEY, loc)
  emit('location_moved_out', '', loc, { 'to', to })
  return { 'ok', 1 }
end

if step == 'park' then
  local to = ARGV[5]
  if redis.call('HGET', mk, 'to') ~= to then return { 'not_sealed', loc } end
  local skus = args_from(6)
  for _, sku in ipairs(skus) do -- checks first: a refused page parks nothing
    if regressed_sku({ { sku } }) then return { 'stock_regressed', sku } end
    reap_position(sku, loc)
    local _, reserved = read_position(sku, loc)
    if reserved ~= 0 or redis.call('ZCARD', holds_key(sku, loc)) > 0 then
      return { 'active_holds', sku }
    end
  end
  local parked = 0
  for _, sku in ipairs(skus) do
    local pos = pos_key(sku, loc)
    if redis.call('EXISTS', pos) == 1 then
      local on_hand, _, safety, count_as_of = read_position(sku, loc)
      local damaged, qc = read_buckets(sku, loc) -- in_transit is 0: no transfer is open
      local dk, ak = deltas_key(sku, loc), arrivals_key(sku, loc)
      local deltas = redis.call('ZRANGE', dk, 0, -1, 'WITHSCORES')
      local supplies = redis.call('HGETALL', ak)
      redis.call('HSET', pk, sku, cjson.encode({ on_hand, safety, count_as_of or '', deltas,
        damaged, qc, supplies }))
      redis.call('DEL', pos, dk, holds_key(sku, loc), ak)
      redis.call('SREM', sku_locs_key(sku), loc)
      emit('position_moved_out', sku, loc, { 'to', to, 'd_on_hand', -on_hand, 'd_reserved', 0,
        'd_damaged', -damaged, 'd_quality_control', -qc, 'on_hand', 0, 'reserved', 0,
        'damaged', 0, 'quality_control', 0, 'in_transit', 0 })
      parked = parked + 1
    end
  end
  return { 'ok', parked }
end

if step == 'import' then
  local from = ARGV[5]
  local rows = cjson.decode(ARGV[6])
  for _, row in ipairs(rows) do
    if regressed_sku({ { row[1] } }) then return { 'stock_regressed', row[1] } end
  end
  local imported = 0
  for _, row in ipairs(rows) do
    local sku = row[1]
    local pos = pos_key(sku, loc)
    if redis.call('EXISTS', pos) == 0 then -- else imported before (no change reaches it yet)
      local p = cjson.decode(row[2])
      local on_hand, safety, count_as_of, deltas = p[1], p[2], p[3], p[4]
      -- parked before the stock beyond the shelf existed: none of it
      local damaged, qc, supplies = p[5] or 0, p[6] or 0, p[7] or {}
      -- on_hand is written even when 0: the key marks the position as imported
      local fields = { ON_HAND, on_hand }
      if safety ~= 0 then table.insert(fields, SAFETY); table.insert(fields, safety) end
      if count_as_of ~= '' then
        table.insert(fields, COUNT_AS_OF); table.insert(fields, count_as_of)
      end
      if damaged ~= 0 then table.insert(fields, DAMAGED); table.insert(fields, damaged) end
      if qc ~= 0 then table.insert(fields, QUALITY_CONTROL); table.insert(fields, qc) end
      redis.call('HSET', pos, unpack(fields))
      if #supplies > 0 then redis.call('HSET', arrivals_key(sku, loc), unpack(supplies)) end
      redis.call('SADD', sku_locs_key(sku), loc)
      local seq = emit('position_moved_in', sku, loc, { 'from', from, 'd_on_hand', on_hand,
        'd_reserved', 0, 'd_damaged', damaged, 'd_quality_control', qc, 'on_hand', on_hand,
        'reserved', 0, 'damaged', damaged, 'quality_control', qc, 'in_transit', 0,
        'safety', safety, 'counted_as_of', count_as_of })
      -- The as-of history keeps its times and deltas; its members named by the source's seq
      -- are renamed by this domain's (seq.n), so they never collide with this domain's own.
      local dk = deltas_key(sku, loc)
      for i = 1, #deltas, 2 do
        local delta = string.match(deltas[i], ':(-?%d+)$')
        redis.call('ZADD', dk, deltas[i + 1], seq .. '.' .. ((i + 1) / 2) .. ':' .. delta)
      end
      imported = imported + 1
    end
  end
  return { 'ok', imported }
end

if step == 'unpark' then
  local skus = args_from(5)
  if #skus == 0 then return { 'ok', 0 } end
  return { 'ok', redis.call('HDEL', pk, unpack(skus)) }
end

if step == 'open' then
  local from = ARGV[5]
  local record = args_from(6)
  local rec = {}
  for i = 1, #record - 1, 2 do rec[record[i]] = record[i + 1] end
  local lk = loc_key(loc)
  local created = 1 - redis.call('EXISTS', lk)
  if #record > 0 then redis.call('HSET', lk, unpack(record)) end
  redis.call('SADD', LOCATIONS_KEY, loc)
  local lat, lon = rec.lat or '', rec.lon or ''
  if lat ~= '' and lon ~= '' then redis.call('GEOADD', GEO_KEY, lon, lat, loc) end
  if created == 1 then
    emit('location_upserted', '', loc, { 'name', rec.name or '', 'loc_kind', rec.kind or '',
      'pickup', rec.pickup or '0', 'ship', rec.ship or '0', 'lat', lat, 'lon', lon,
      'from', from })
  end
  return { 'ok', created }
end

if step == 'close' then
  if redis.call('EXISTS', mk) == 0 then return { 'ok', 0 } end
  local left = redis.call('HLEN', pk)
  if left > 0 then return { 'parked', left } end
  redis.call('DEL', mk, ages_key(loc), locrisk_key(loc))
  for state in pairs(ACTIVE) do redis.call('DEL', locstate_key(loc, state)) end
  return { 'ok', 1 }
end

return redis.error_reply('ERR move_location: unknown step ' .. tostring(step))
