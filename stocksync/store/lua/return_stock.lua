-- return_stock.lua: units coming back at one or more locations of the domain, each line into
-- the bucket its disposition names (restock: on_hand, inspect: quality_control, damaged:
-- damaged), idempotent by return_id. Linked to a fulfilled reservation (bought online or in
-- another store, returned here), or an unlinked till return.
--
-- ARGV[3] return_id   ARGV[4] reservation_id ('' = an unlinked return)
-- ARGV[5] lines JSON [[sku, location_id, qty, disposition], ...], each (sku, location) once
-- ARGV[6] fingerprint of the normalized request   ARGV[7] source
-- ARGV[8] return retention in seconds: how long the return and the reservation's returned
--         units are kept, and so how long after its fulfilment a reservation takes returns
-- ARGV[9] the caller's access ('' = any; see may_access in _lib.lua): a reservation the
--         caller may not access is 'not_found'
-- ARGV[10] the ledger's record of a reservation Redis pruned, JSON {state, lines: [[sku, loc,
--          qty], ...], key, fulfilled_at}, '' = none (then a pruned one is 'reservation_gone')
-- ARGV[11] occurred_at in ms ('' = now): when a source (a connector) says the units came back.
--          A restocked line's on_hand is recorded then (as-of rule); one that came back at or
--          before the newest applied count of its position is already in that count's
--          on_hand, so the return is recorded without adding it again.
--
-- A linked return never brings back more units of a SKU than the reservation fulfilled,
-- counting its earlier returns (the returned units hash, kept as long as returns are taken).
--
-- Returns {'ok'|'replay', reservation_id, lines JSON, created_at}
--         {'idempotency_conflict'} | {'unknown_location', loc, ...} | {'stock_regressed', sku}
--         | {'not_found'} | {'reservation_gone'} | {'reservation_not_fulfilled', state}
--         | {'return_window_closed', fulfilled_at}
--         | {'return_exceeds_fulfilled', sku, fulfilled, returned, requested}

local id = ARGV[3]
local res_id = ARGV[4]
local lines_json = ARGV[5]
local fp = ARGV[6]
local source = ARGV[7]
local keep_seconds = tonumber(ARGV[8])
local access = ARGV[9]
local fallback = ARGV[10]
local occurred = occurred_at(ARGV[11])

local DISPOSITION_FIELD = { restock = ON_HAND, inspect = QUALITY_CONTROL, damaged = DAMAGED }

local rk = return_key(id)
local stored = redis.call('HMGET', rk, 'fp', 'reservation_id', 'lines', 'created_at')
if stored[1] then
  if stored[1] ~= fp then return { 'idempotency_conflict' } end
  return { 'replay', stored[2], stored[3], stored[4] }
end

local lines = cjson.decode(lines_json)
local unknown = { 'unknown_location' }
for _, ln in ipairs(lines) do
  if redis.call('EXISTS', loc_key(ln[2])) == 0 then table.insert(unknown, ln[2]) end
end
if #unknown > 1 then return unknown end
local regressed = regressed_sku(lines)
if regressed then return { 'stock_regressed', regressed } end

local rdk = returned_key(res_id)
if res_id ~= '' then
  local r = redis.call('HMGET', res_key(res_id), 'state', 'lines', 'key', 'h:fulfilled')
  local state, sold, owner, fulfilled_at = r[1], nil, r[3], num(r[4])
  if state then
    sold = cjson.decode(r[2])
  elseif fallback ~= '' then
    local record = cjson.decode(fallback)
    state, sold, owner, fulfilled_at = record.state, record.lines, record.key, record.fulfilled_at
  else
    return { 'reservation_gone' }
  end
  if not may_access(access, owner, sold) then return { 'not_found' } end
  if state ~= 'fulfilled' then return { 'reservation_not_fulfilled', state } end
  if NOW - fulfilled_at > keep_seconds * 1000 then
    return { 'return_window_closed', fulfilled_at }
  end
  local fulfilled, requested, order = {}, {}, {}
  for _, ln in ipairs(sold) do fulfilled[ln[1]] = (fulfilled[ln[1]] or 0) + ln[3] end
  for _, ln in ipairs(lines) do
    if not requested[ln[1]] then table.insert(order, ln[1]) end
    requested[ln[1]] = (requested[ln[1]] or 0) + ln[3]
  end
  for _, sku in ipairs(order) do
    local returned = num(redis.call('HGET', rdk, sku))
    if returned + requested[sku] > (fulfilled[sku] or 0) then
      return { 'return_exceeds_fulfilled', sku, fulfilled[sku] or 0, returned, requested[sku] }
    end
  end
end

-- Checked; now the writes.
for _, ln in ipairs(lines) do
  local sku, loc, qty, disposition = ln[1], ln[2], ln[3], ln[4]
  local field = DISPOSITION_FIELD[disposition]
  local count_as_of = select(4, read_position(sku, loc))
  local counted = field == ON_HAND and count_as_of and occurred < NOW
    and occurred <= tonumber(count_as_of)
  reap_position(sku, loc)
  local d = {}
  if not counted then
    d[field] = qty
    add_units(sku, loc, field, qty)
  end
  redis.call('SADD', sku_locs_key(sku), loc)
  local extra = { 'ret', id, 'disp', disposition, 'src', source, 'fp', fp }
  if res_id ~= '' then table.insert(extra, 'res'); table.insert(extra, res_id) end
  emit_bucket_event('returned', sku, loc, qty, d, extra, occurred)
end
redis.call('HSET', rk, 'fp', fp, 'reservation_id', res_id, 'lines', lines_json,
  'created_at', NOW, 'actor', ACTOR)
redis.call('EXPIRE', rk, keep_seconds)
if res_id ~= '' then
  for _, ln in ipairs(lines) do redis.call('HINCRBY', rdk, ln[1], ln[3]) end
  local ids = redis.call('HGET', rdk, ':ids')
  redis.call('HSET', rdk, ':ids', ids and (ids .. ',' .. id) or id)
  redis.call('EXPIRE', rdk, keep_seconds)
end
return { 'ok', res_id, lines_json, NOW }
