-- _sourcing.lua: the locations of a reservation's pool lines, chosen inside reserve.lua by
-- each pool's sourcing strategy, from the positions as they are in that same atomic call, so
-- no sale can come between the choice and the hold (DESIGN, channel pool; docs/pool-
-- reservations.md has the rules with examples, tests/support/sourcing_model.py restates them
-- in plain Python and the property test compares the two).
--
-- A location offers a pool  max(0, on_hand - reserved - safety - buffer - taken)  units of a
-- SKU, where `taken` is what this same reservation already takes there: its location lines
-- first, then its pool lines one after another, by SKU then pool id. The pool's buffer is
-- never taken. Candidates are the pool's locations that exist in this domain, in the pool's
-- `locs` order (priority, then location id: the order the pool's writer stores); a
-- strategy orders them:
--   priority        that order
--   nearest         distance from `near` (haversine, as stocksync/domain/geo.py), locations
--                   without coordinates last; ties in pool order
--   most_available  the largest offer first; ties in pool order
--   fewest_splits   at the pool's first line, the first location in pool order that offers
--                   every line of that pool in full takes them all; else each line as
--                   most_available
-- Without split a line takes the first location offering all its units; with split it fills
-- in that order. A line no location (or the pool as a whole) can serve is short: it takes
-- nothing and is reported with the pool's offer (its locations' offers, before this request).

local EARTH_RADIUS_KM = 6371.0088
local DEG = 0.017453292519943295 -- pi / 180 (math is not reachable while a library loads)

-- Haversine distance in km: the formula of stocksync/domain/geo.py, operation for operation.
local function haversine_km(lat1, lon1, lat2, lon2)
  local dlat = (lat2 - lat1) * DEG
  local dlon = (lon2 - lon1) * DEG
  local a = math.sin(dlat / 2) ^ 2
    + math.cos(lat1 * DEG) * math.cos(lat2 * DEG) * math.sin(dlon / 2) ^ 2
  return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(a))
end

-- Byte order of two strings (Python's): Lua's `<` on strings follows the server's collation
-- locale, which need not be bytewise.
local function bytes_less(a, b)
  for i = 1, math.min(#a, #b) do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return #a < #b
end

-- A pool's configuration (hash pool_key, see stocksync/store/keys.py), or nil.
local function load_pool(pool_id)
  local h = redis.call('HMGET', pool_key(pool_id), 'strategy', 'locs', 'channels')
  if not h[1] then return nil end
  local channels = {}
  for _, ch in ipairs(cjson.decode(h[3] or '[]')) do channels[ch] = true end
  return { id = pool_id, strategy = h[1], locs = cjson.decode(h[2] or '[]'),
    channels = channels, any_channel = next(channels) == nil }
end

local STRATEGIES = { priority = true, nearest = true, most_available = true,
  fewest_splits = true }

-- Positions and locations read once per call; `taken` counts this reservation's units.
local function new_sourcing(loc_lines, near)
  local S = { avail = {}, taken = {}, known = {}, coords = {}, near = near }
  for _, ln in ipairs(loc_lines) do
    local pk = pos_key(ln[1], ln[2])
    S.taken[pk] = (S.taken[pk] or 0) + ln[3]
  end
  return S
end

-- on_hand - reserved - safety at a position, read once per call.
local function raw_available(S, sku, loc)
  local pk = pos_key(sku, loc)
  local a = S.avail[pk]
  if a == nil then
    local p = redis.call('HMGET', pk, ON_HAND, RESERVED, SAFETY)
    a = num(p[1]) - num(p[2]) - num(p[3])
    S.avail[pk] = a
  end
  return a
end

local function location_known(S, loc)
  local k = S.known[loc]
  if k == nil then
    k = redis.call('EXISTS', loc_key(loc)) == 1
    S.known[loc] = k
  end
  return k
end

-- A location's distance from `near` in km, or false when it has no coordinates.
local function distance(S, loc)
  local d = S.coords[loc]
  if d == nil then
    local c = redis.call('HMGET', loc_key(loc), 'lat', 'lon')
    local lat, lon = tonumber(c[1] or ''), tonumber(c[2] or '')
    d = false
    if lat and lon then d = haversine_km(S.near[1], S.near[2], lat, lon) end
    S.coords[loc] = d
  end
  return d
end

-- The pool's existing locations with their offer of `sku` now, in pool order.
local function candidates(S, pool, sku)
  local out = {}
  for i, l in ipairs(pool.locs) do
    local loc, buffer = l[1], tonumber(l[3]) or 0
    if location_known(S, loc) then
      local offer = raw_available(S, sku, loc) - (S.taken[pos_key(sku, loc)] or 0) - buffer
      table.insert(out, { loc = loc, idx = i, buffer = buffer, offer = math.max(0, offer) })
    end
  end
  return out
end

local function in_pool_order(a, b) return a.idx < b.idx end
local function by_offer(a, b)
  if a.offer ~= b.offer then return a.offer > b.offer end
  return a.idx < b.idx
end
local function by_distance(a, b)
  if (a.dist ~= false) ~= (b.dist ~= false) then return a.dist ~= false end
  if a.dist ~= false and a.dist ~= b.dist then return a.dist < b.dist end
  return a.idx < b.idx
end

local function ordered(S, pool, sku, strategy)
  local c = candidates(S, pool, sku)
  if strategy == 'most_available' then
    table.sort(c, by_offer)
  elseif strategy == 'nearest' then
    for _, x in ipairs(c) do x.dist = distance(S, x.loc) end
    table.sort(c, by_distance)
  else
    table.sort(c, in_pool_order)
  end
  return c
end

-- {{loc, units}, ...} serving `qty` from `cands` in their order, or nil.
local function pick(cands, qty, split)
  if not split then
    for _, c in ipairs(cands) do
      if c.offer >= qty then return { { c.loc, qty } } end
    end
    return nil
  end
  local got, rest = {}, qty
  for _, c in ipairs(cands) do
    if rest == 0 then break end
    local n = math.min(c.offer, rest)
    if n > 0 then
      table.insert(got, { c.loc, n })
      rest = rest - n
    end
  end
  if rest > 0 then return nil end
  return got
end

-- The pool's offer of `sku` before this request: what a pool availability read shows.
local function pool_offer(S, pool, sku)
  local total = 0
  for _, l in ipairs(pool.locs) do
    if location_known(S, l[1]) then
      total = total + math.max(0, raw_available(S, sku, l[1]) - (tonumber(l[3]) or 0))
    end
  end
  return total
end

-- fewest_splits: the first location (pool order) offering every line of `group` in full.
local function one_location_for(S, pool, group)
  for i, l in ipairs(pool.locs) do
    local loc, buffer, fits = l[1], tonumber(l[3]) or 0, location_known(S, l[1])
    for _, ln in ipairs(group) do
      if not fits then break end
      local offer = raw_available(S, ln[1], loc) - (S.taken[pos_key(ln[1], loc)] or 0) - buffer
      fits = offer >= ln[3]
    end
    if fits then return loc, i end
  end
  return nil
end

-- Resolve a reservation's pool lines ({{sku, pool, qty}, ...} sorted by SKU then pool) next
-- to its location lines ({{sku, loc, qty}, ...}), reading and reaping what it needs.
-- Returns lines, sources, shorts, refusal:
--   refusal  a reply ({'unknown_pool', id} | {'near_required', id} |
--            {'pool_channel', id, channel}) when a pool cannot be used at all; or
--   shorts   {sku, 'pool:' .. id, requested, pool offer, ...} of the lines that do not fit
--            (then lines are the location lines as given and sources are empty); or
--   lines    every line, location and pool units summed per (sku, location), sorted by SKU
--            then location id; sources {{sku, pool, loc, qty}, ...} in the order taken.
local function choose_sources(loc_lines, pool_lines, channel, near, split)
  local pools = {}
  for _, ln in ipairs(pool_lines) do
    local id = ln[2]
    if not pools[id] then
      local pool = load_pool(id)
      if not pool then return nil, nil, nil, { 'unknown_pool', id } end
      if not pool.any_channel and not pool.channels[channel] then
        return nil, nil, nil, { 'pool_channel', id, channel }
      end
      if not STRATEGIES[pool.strategy] then
        error('pool ' .. id .. ' has an unknown strategy ' .. tostring(pool.strategy))
      end
      if pool.strategy == 'nearest' and not near then
        return nil, nil, nil, { 'near_required', id }
      end
      pools[id] = pool
    end
    -- Due holds at the pool's positions of the SKU end first: a stale hold never hides units.
    for _, l in ipairs(pools[id].locs) do reap_position(ln[1], l[1]) end
  end

  local S = new_sourcing(loc_lines, near)
  local sources, shorts = {}, {}
  local function take(sku, pool_id, got)
    for _, g in ipairs(got) do
      local pk = pos_key(sku, g[1])
      S.taken[pk] = (S.taken[pk] or 0) + g[2]
      table.insert(sources, { sku, pool_id, g[1], g[2] })
    end
  end
  local grouped = {} -- fewest_splits pools: 'one' (served at one location) or 'each'
  for _, ln in ipairs(pool_lines) do
    local sku, id, qty = ln[1], ln[2], ln[3]
    local pool = pools[id]
    local strategy = pool.strategy
    if strategy == 'fewest_splits' and not grouped[id] then
      local group = {}
      for _, other in ipairs(pool_lines) do
        if other[2] == id then table.insert(group, other) end
      end
      local loc = one_location_for(S, pool, group)
      if loc then
        for _, g in ipairs(group) do take(g[1], id, { { loc, g[3] } }) end
        grouped[id] = 'one'
      else
        grouped[id] = 'each'
      end
    end
    if grouped[id] ~= 'one' then
      if strategy == 'fewest_splits' then strategy = 'most_available' end
      local got = pick(ordered(S, pool, sku, strategy), qty, split)
      if got then
        take(sku, id, got)
      else
        for _, v in ipairs({ sku, 'pool:' .. id, qty, pool_offer(S, pool, sku) }) do
          table.insert(shorts, v)
        end
      end
    end
  end
  if #shorts > 0 then return loc_lines, {}, shorts, nil end

  local merged, order = {}, {}
  local function add(sku, loc, qty)
    local k = sku .. ' ' .. loc -- no SKU or location id has a space
    if not merged[k] then
      merged[k] = { sku, loc, 0 }
      table.insert(order, merged[k])
    end
    merged[k][3] = merged[k][3] + qty
  end
  for _, l in ipairs(loc_lines) do add(l[1], l[2], l[3]) end
  for _, s in ipairs(sources) do add(s[1], s[3], s[4]) end
  table.sort(order, function(a, b)
    if a[1] ~= b[1] then return bytes_less(a[1], b[1]) end
    return bytes_less(a[2], b[2])
  end)
  return order, sources, shorts, nil
end
