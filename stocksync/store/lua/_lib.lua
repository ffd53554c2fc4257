-- _lib.lua: helpers shared by every operation of the function library (stocksync/store/scripts.py).
--
-- KEYS[1]  the stock domain's meta hash, e.g. "ss:{default:default}:meta": its prefix (without
--          "meta") has the domain's hash tag, every key a script touches is built from that
--          prefix, so all of them hash to one slot (Redis Cluster safe).
-- ARGV[1]  retention in seconds for terminal reservations and idempotency records
-- ARGV[2]  approximate maximum length of the outbox stream (0 = no cap)
-- ARGV[3…] the operation's own arguments (each script names them at its top)
-- ARGV[#ARGV] who acts ('' = unknown): "api:<key id>", "connector:<name>", "worker:<name>",
--          "cli"; written on every event (and so on every ledger movement). Scripts that
--          take a variable number of arguments stop at NARGS.
--
-- Time is Redis server time, never the caller's clock.

-- The per-call values: upvalues of every helper below, set by begin() at the entry of each
-- operation (the function library in scripts.py calls it once per operation, also inside a
-- batch, so each operation has its own retention, outbox cap and actor).
local P, RETENTION, OUTBOX_MAXLEN, NARGS, ACTOR, NOW
local ATRISK, ACTIVE_KEY, OUTBOX_KEY, SEQ_KEY, REGRESSED_KEY, LOCATIONS_KEY, GEO_KEY, POOLS_KEY
-- ACTIVE (the active states) and DELTA_WINDOW_MS come from Python, prepended by scripts.py.

-- Redis server time in ms (read once per call: every operation of a batch shares it).
local function server_now()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function begin(keys, argv, now)
  P = string.sub(keys[1], 1, -5) -- without 'meta'
  RETENTION = tonumber(argv[1])
  OUTBOX_MAXLEN = tonumber(argv[2])
  NARGS = #argv - 1
  ACTOR = argv[#argv]
  NOW = now
  -- One key each per namespace (see stocksync/store/keys.py for what they hold).
  ATRISK = P .. 'risk'
  ACTIVE_KEY = P .. 'active'
  OUTBOX_KEY = P .. 'outbox'
  SEQ_KEY = P .. 'seq'
  REGRESSED_KEY = P .. 'regressed'
  LOCATIONS_KEY = P .. 'locations'
  GEO_KEY = P .. 'geo'
  POOLS_KEY = P .. 'pools'
end

local function pos_key(sku, loc) return P .. 'pos:' .. loc .. ':' .. sku end
local function res_key(id) return P .. 'res:' .. id end
-- Active reservations holding units at a position, scored by deadline ('+inf' = none).
local function holds_key(sku, loc) return P .. 'holds:' .. loc .. ':' .. sku end
local function deltas_key(sku, loc) return P .. 'deltas:' .. loc .. ':' .. sku end
local function loc_key(loc) return P .. 'loc:' .. loc end
local function idem_key(source, event_id) return P .. 'idem:' .. source .. ':' .. event_id end
local function sku_locs_key(sku) return P .. 'skulocs:' .. sku end
-- Ordered indexes of active reservations (see `index_reservation`): per location and state, per
-- API key, per customer, the at-risk ones (all, and per location); each scored by deadline
-- ('+inf' = none), member `ordered_member` so ties read in created_at, then id order. And per
-- location, lexically by SKU then created_at (`age_member`): a position's holds, newest first.
local function locstate_key(loc, state) return P .. 'locstate:' .. loc .. ':' .. state end
local function bykey_key(key_id) return P .. 'keyres:' .. key_id end
local function bycust_key(cref) return P .. 'custres:' .. cref end
local function locrisk_key(loc) return P .. 'locrisk:' .. loc end
local function ages_key(loc) return P .. 'ages:' .. loc end
-- Units an API key holds per location on a channel capped in units (hash: location -> units).
local function heldunits_key(key_id, channel) return P .. 'heldunits:' .. key_id .. ':' .. channel end
local function code_key(code) return P .. 'code:' .. code end
-- A location being moved to another domain (move_location.lua, stocksync.store.domain_moves):
-- its record while it is sealed (hash: the location's fields and 'to'), and its positions
-- parked out of the domain until the target has them (hash: SKU -> JSON).
local function moving_key(loc) return P .. 'moving:' .. loc end
local function parked_key(loc) return P .. 'parked:' .. loc end
-- Units on their way to a position (hash: 's:<supply_id>' | 't:<transfer_id>' ->
-- '<qty>|<expected_at ms or empty>'), a return, a reservation's returned units, a transfer and
-- a location's transfers (see stocksync/store/keys.py for what each holds).
local function arrivals_key(sku, loc) return P .. 'arr:' .. loc .. ':' .. sku end
local function return_key(id) return P .. 'ret:' .. id end
local function returned_key(res_id) return P .. 'returned:' .. res_id end
local function transfer_key(id) return P .. 'xfer:' .. id end
local function loc_transfers_key(loc) return P .. 'xferloc:' .. loc end
-- A location's positions with units in quality_control: the inspection queue (track_inspection).
local function qc_index_key(loc) return P .. 'qcloc:' .. loc end
-- A channel pool's configuration (hash: name, channels, strategy, locs; see keys.py).
local function pool_key(pool_id) return P .. 'pool:' .. pool_id end
-- The namespace directory's (P is the directory's prefix when KEYS[1] is its anchor).
local function resdomain_key() return P .. 'resdomain' end
-- ATRISK and the namespace's single keys (ACTIVE_KEY, OUTBOX_KEY, ...) are set by begin().

local function num(v) return tonumber(v) or 0 end

-- A position's hash (pos_key): one-letter fields, each absent when 0 (count_as_of: absent =
-- never counted), so a position stays a tiny listpack (bytes per position, README "Key layout";
-- the names are POSITION_FIELDS in stocksync/store/keys.py). Every script goes through these.
local ON_HAND, RESERVED, SAFETY, COUNT_AS_OF = 'o', 'r', 's', 'c'
-- Stock beyond the shelf: units the position owns but cannot sell now (never in `available`).
local DAMAGED, QUALITY_CONTROL, IN_TRANSIT = 'd', 'q', 't'
-- The buckets by their API names (moves, returns, transfers name them so).
local BUCKET_FIELD = { on_hand = ON_HAND, damaged = DAMAGED, quality_control = QUALITY_CONTROL,
  in_transit = IN_TRANSIT }

-- Keep the inspection queue (qc_index_key) from an event's fields: every bucket event states
-- the position's quality_control after it (shelf contract), so the queue follows every script
-- that moves units in or out of inspection without each of them having to remember it. A SKU
-- keeps its first entry time (NX) while units wait; it leaves when none are left.
local function track_inspection(sku, loc, fields)
  for i = 1, #fields - 1, 2 do
    if fields[i] == 'quality_control' then
      if (tonumber(fields[i + 1]) or 0) > 0 then
        redis.call('ZADD', qc_index_key(loc), 'NX', NOW, sku)
      else
        redis.call('ZREM', qc_index_key(loc), sku)
      end
      return
    end
  end
end

-- Append one event to the outbox; SKU events get the SKU's next seq.
-- Returns seq, stream id, and the entry's field/value list.
local function emit(kind, sku, loc, fields)
  local seq = 0
  if sku ~= '' then seq = redis.call('HINCRBY', SEQ_KEY, sku, 1) end
  if sku ~= '' then track_inspection(sku, loc, fields) end
  local entry = { 'kind', kind, 'sku', sku, 'loc', loc, 'seq', seq, 'at', NOW }
  for _, v in ipairs(fields) do table.insert(entry, v) end
  if ACTOR ~= '' then table.insert(entry, 'actor'); table.insert(entry, ACTOR) end
  local event_id
  if OUTBOX_MAXLEN > 0 then -- an operator's choice: bounded memory over a complete ledger
    event_id = redis.call('XADD', OUTBOX_KEY, 'MAXLEN', '~', OUTBOX_MAXLEN, '*', unpack(entry))
  else -- default: only the ledger copy trims, below what it has written
    event_id = redis.call('XADD', OUTBOX_KEY, '*', unpack(entry))
  end
  return seq, event_id, entry
end

-- SKUs whose Redis state went back in time (older than the ledger) refuse writes until
-- `stocksync rebuild` repairs them (DESIGN rule 6). Returns the first such SKU, or nil.
local function regressed_sku(lines)
  for _, ln in ipairs(lines) do
    if redis.call('SISMEMBER', REGRESSED_KEY, ln[1]) == 1 then return ln[1] end
  end
  return nil
end

-- Record a physical delta at the time it occurred, for counts taken before it (as-of rule).
local function record_delta(sku, loc, at, seq, delta)
  local dk = deltas_key(sku, loc)
  redis.call('ZADD', dk, at, seq .. ':' .. delta)
  redis.call('ZREMRANGEBYSCORE', dk, '-inf', '(' .. (NOW - DELTA_WINDOW_MS))
end

-- Add (sign 1) or take back (sign -1) the units of `lines` in a key's per-location count on a
-- channel capped in units. reserve.lua counts a hold there (and marks it `ucap`); every script
-- that moves or ends such a hold keeps the count right.
local function count_units(key_id, channel, lines, sign)
  local hk = heldunits_key(key_id, channel)
  for _, ln in ipairs(lines) do
    if redis.call('HINCRBY', hk, ln[2], sign * ln[3]) <= 0 then redis.call('HDEL', hk, ln[2]) end
  end
end

-- Most due holds one call expires on its way (at a position, of a capped key or customer, in
-- a list it reads): no call's work grows with the number of holds. The reaper (expire.lua)
-- catches up the rest.
local REAP_PER_CALL = 8 -- an expiry costs ~100 µs of Redis time: a reserve stays under 5 ms

-- Member of the ordered indexes: created_at at a fixed width, then the id, so entries with the
-- same deadline read oldest first, then by id.
local function ordered_member(id, created) return string.format('%015.0f', created) .. ':' .. id end
local function member_id(member) return string.sub(member, 17) end
-- Member of a location's ages index: the SKU first, so a position's holds are one lex range.
local function age_member(sku, id, created) return sku .. ':' .. ordered_member(id, created) end

-- Put an active reservation into every index that its stored state, deadline, owner, customer
-- and at-risk flag call for, at each location of `lines` (ZADD: also re-scores a new deadline).
local function index_reservation(id, rk, lines)
  local r = redis.call('HMGET', rk, 'state', 'created_at', 'expires_at', 'key', 'customer_ref',
    'at_risk')
  local score = r[3]
  if not score or score == '' then score = '+inf' end
  local created = num(r[2])
  local m = ordered_member(id, created)
  local flagged = r[6] == '1'
  redis.call('ZADD', ACTIVE_KEY, score, id)
  for _, ln in ipairs(lines) do
    redis.call('ZADD', holds_key(ln[1], ln[2]), score, id)
    redis.call('ZADD', locstate_key(ln[2], r[1]), score, m)
    redis.call('ZADD', ages_key(ln[2]), 0, age_member(ln[1], id, created))
    if flagged then redis.call('ZADD', locrisk_key(ln[2]), score, m) end
  end
  if r[4] and r[4] ~= '' then redis.call('ZADD', bykey_key(r[4]), score, m) end
  if r[5] and r[5] ~= '' then redis.call('ZADD', bycust_key(r[5]), score, m) end
  if flagged then redis.call('ZADD', ATRISK, score, m) end
end

-- Take a reservation out of every index index_reservation put it in (as it ends, or before
-- its state, lines or flag change and it is indexed again).
local function drop_indexes(id, rk, lines)
  local r = redis.call('HMGET', rk, 'state', 'created_at', 'key', 'customer_ref')
  local created = num(r[2])
  local m = ordered_member(id, created)
  redis.call('ZREM', ACTIVE_KEY, id)
  for _, ln in ipairs(lines) do
    redis.call('ZREM', holds_key(ln[1], ln[2]), id)
    if r[1] then redis.call('ZREM', locstate_key(ln[2], r[1]), m) end
    redis.call('ZREM', ages_key(ln[2]), age_member(ln[1], id, created))
    redis.call('ZREM', locrisk_key(ln[2]), m)
  end
  if r[3] and r[3] ~= '' then redis.call('ZREM', bykey_key(r[3]), m) end
  if r[4] and r[4] ~= '' then redis.call('ZREM', bycust_key(r[4]), m) end
  redis.call('ZREM', ATRISK, m)
end

-- Drop an ending reservation from the indexes of active ones. Its hold code keeps pointing
-- at it until the reservation itself is pruned.
local function unindex(id, rk, lines)
  local r = redis.call('HMGET', rk, 'key', 'customer_ref', 'code', 'channel', 'ucap')
  drop_indexes(id, rk, lines)
  if r[5] and r[5] ~= '' and r[1] and r[1] ~= '' then
    count_units(r[1], r[4], lines, -1)
    redis.call('HDEL', rk, 'ucap') -- counted back once
  end
  if r[3] and r[3] ~= '' then redis.call('EXPIRE', code_key(r[3]), RETENTION) end
end

-- Move an active reservation to a terminal state, giving back (or consuming) its units.
local function finish(id, rk, lines, new_state, consume, occurred)
  -- `occurred`: when the units left (a till reporting late). A sale at or before the newest
  -- applied count is already missing from that count (DESIGN rule 7): only the hold ends.
  occurred = occurred or NOW
  local channel = redis.call('HGET', rk, 'channel') or ''
  unindex(id, rk, lines)
  local events = {}
  for _, ln in ipairs(lines) do
    local sku, loc, qty = ln[1], ln[2], ln[3]
    local pk = pos_key(sku, loc)
    local p = redis.call('HMGET', pk, ON_HAND, RESERVED, COUNT_AS_OF)
    local on_hand, reserved = num(p[1]), num(p[2]) - qty
    local d_on_hand = 0
    local counted = consume and occurred < NOW and tonumber(p[3] or '') or nil
    if consume and not (counted and occurred <= counted) then
      on_hand = on_hand - qty
      d_on_hand = -qty
      redis.call('HSET', pk, RESERVED, reserved, ON_HAND, on_hand)
    else
      redis.call('HSET', pk, RESERVED, reserved)
    end
    redis.call('ZREM', holds_key(sku, loc), id)
    local fields = { 'res', id, 'ch', channel, 'qty', qty, 'd_on_hand', d_on_hand,
      'd_reserved', -qty, 'on_hand', on_hand, 'reserved', reserved }
    if occurred < NOW then
      table.insert(fields, 'occurred_at'); table.insert(fields, occurred)
    end
    local seq, event_id, entry = emit(new_state, sku, loc, fields)
    table.insert(events, { event_id, entry })
    if d_on_hand ~= 0 then record_delta(sku, loc, occurred, seq, d_on_hand) end
  end
  -- A sale's events stay on the reservation, whole, so it can be written to the ledger (and
  -- re-written on a retry) before it is acknowledged, even once the outbox was trimmed.
  local sale = ''
  if consume then sale = cjson.encode(events) end
  redis.call('HSET', rk, 'state', new_state, 'updated_at', NOW, 'expires_at', '',
    'h:' .. new_state, NOW, 'events', sale)
  redis.call('ZREM', ACTIVE_KEY, id)
  redis.call('EXPIRE', rk, RETENTION)
end

-- Expire one reservation whose deadline passed; drops a stale entry from the index `hk`.
local function expire_one(id, hk)
  local rk = res_key(id)
  local r = redis.call('HMGET', rk, 'state', 'lines', 'expires_at')
  if not ACTIVE[r[1]] then
    if hk then redis.call('ZREM', hk, id) end
    redis.call('ZREM', ACTIVE_KEY, id)
    return 0
  end
  if r[3] == '' or num(r[3]) > NOW then return 0 end
  local lines = cjson.decode(r[2])
  if regressed_sku(lines) then return 0 end -- frozen until rebuilt
  finish(id, rk, lines, 'expired', false)
  return 1
end

-- Reap due holds at a position (up to REAP_PER_CALL), so a stale hold does not block a sale
-- there.
local function reap_position(sku, loc)
  local hk = holds_key(sku, loc)
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', hk, '-inf', NOW, 'LIMIT', 0, REAP_PER_CALL)) do
    expire_one(id, hk)
  end
end

-- Expire up to `max` reservations whose deadline in the ordered index `key` passed. An entry
-- of a reservation no longer active is dropped; one whose deadline moved is re-scored.
local function reap_ordered(key, max)
  for _, m in ipairs(redis.call('ZRANGEBYSCORE', key, '-inf', NOW, 'LIMIT', 0, max)) do
    local id = member_id(m)
    if expire_one(id, nil) == 0 then
      local r = redis.call('HMGET', res_key(id), 'state', 'lines')
      if ACTIVE[r[1]] then
        index_reservation(id, res_key(id), cjson.decode(r[2]))
      else
        redis.call('ZREM', key, m)
      end
    end
  end
end

-- A line is short while due holds remain at its position (more than REAP_PER_CALL came due
-- at once): expire as many more as it is units short (each frees at least one unit there),
-- at most REAP_FOR_LINE_MAX, so a stale hold never refuses a sale. Returns how many ended.
local REAP_FOR_LINE_MAX = 24
local function reap_for_line(sku, loc, units_short)
  local hk = holds_key(sku, loc)
  local ended = 0
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', hk, '-inf', NOW, 'LIMIT', 0,
    math.min(units_short, REAP_FOR_LINE_MAX))) do
    ended = ended + expire_one(id, hk)
  end
  return ended
end

local function reap_lines(lines)
  for _, ln in ipairs(lines) do reap_position(ln[1], ln[2]) end
end

-- Whether a caller may see and act on a reservation: the rule of
-- stocksync/api/reservation_access.py (may_access), checked here in the same call as the change.
-- `access` is '' or nil (no restriction: admin keys, internal callers) or
-- '<key_id> <loc>,<loc>,...' (no locations after the space: the key is not location-bound).
-- Allowed: the key that created it, or a key bound to every location of its lines.
local function may_access(access, owner, lines)
  if not access or access == '' then return true end
  local space = string.find(access, ' ', 1, true)
  local key_id, bound = string.sub(access, 1, space - 1), string.sub(access, space + 1)
  if owner and owner ~= '' and owner == key_id then return true end
  if bound == '' then return false end
  local allowed = {}
  for loc in string.gmatch(bound, '[^,]+') do allowed[loc] = true end
  for _, ln in ipairs(lines) do
    if not allowed[ln[2]] then return false end
  end
  return true
end

-- Load a reservation, reaping due holds at its positions first. A caller that may not access
-- it (`access`, see may_access) gets nil, as for a reservation that does not exist.
-- Returns rk, state, lines, regressed_sku (nil, or a SKU whose writes are refused), or nil.
local function load_reservation(id, access)
  local rk = res_key(id)
  local r = redis.call('HMGET', rk, 'state', 'lines', 'key')
  if not r[1] then return nil end
  local lines = cjson.decode(r[2])
  if not may_access(access, r[3], lines) then return nil end
  local regressed = regressed_sku(lines)
  if regressed then return rk, r[1], lines, regressed end
  reap_lines(lines)
  return rk, redis.call('HGET', rk, 'state'), lines, nil
end

-- Set the deadline of an active reservation ('' = none) and index it by it.
local function set_deadline(id, rk, lines, expires_at)
  redis.call('HSET', rk, 'expires_at', expires_at)
  index_reservation(id, rk, lines)
end

-- Emit one event per line for a transition that moves no units (confirm, ready, extend).
local function emit_lines(kind, id, rk, lines)
  local r = redis.call('HMGET', rk, 'channel', 'expires_at')
  for _, ln in ipairs(lines) do
    emit(kind, ln[1], ln[2], { 'res', id, 'ch', r[1] or '', 'qty', ln[3],
      'd_on_hand', 0, 'd_reserved', 0, 'exp', r[2] or '' })
  end
end

-- The holds at a position that cover `shortfall` units, newest first (created_at, then id,
-- descending), read from the location's ages index with an early stop: no more holds than
-- the shortfall has units, a page at a time.
local function newest_holds(sku, loc, shortfall)
  local holds, covered = {}, 0
  local upper, lower = '(' .. sku .. ';', '[' .. sku .. ':' -- ';' follows ':', in no SKU
  while covered < shortfall do
    local page = redis.call('ZREVRANGEBYLEX', ages_key(loc), upper, lower, 'LIMIT', 0,
      math.min(shortfall - covered, REAP_PER_CALL))
    if #page == 0 then break end
    for _, member in ipairs(page) do
      local id = member_id(string.sub(member, #sku + 2))
      local r = redis.call('HMGET', res_key(id), 'state', 'lines', 'at_risk', 'channel')
      if ACTIVE[r[1]] then
        local h = { id = id, qty = 0, flagged = r[3] == '1', channel = r[4] or '',
          lines = cjson.decode(r[2]) }
        for _, ln in ipairs(h.lines) do
          if ln[1] == sku and ln[2] == loc then h.qty = h.qty + ln[3] end
        end
        table.insert(holds, h)
        covered = covered + h.qty
      end
    end
    upper = '(' .. page[#page]
  end
  return holds
end

-- DESIGN rule 8: a till sale left fewer units on hand than are promised to holds. Flag the
-- holds at that position, newest first, until their units cover the physical shortfall.
-- Returns how many were newly flagged.
local function flag_at_risk(sku, loc, shortfall)
  local holds = newest_holds(sku, loc, shortfall)
  local covered, flagged, ids = 0, 0, {}
  for _, h in ipairs(holds) do
    if covered >= shortfall then break end
    covered = covered + h.qty
    if not h.flagged then
      redis.call('HSET', res_key(h.id), 'at_risk', '1')
      index_reservation(h.id, res_key(h.id), h.lines)
      flagged = flagged + 1
      table.insert(ids, h.id)
      -- One event per flagged hold: the ledger folds it into the reservation's row (a later
      -- move clears it there as in Redis), and store pages see it on the hold.
      emit('at_risk', sku, loc, { 'res', h.id, 'ch', h.channel, 'qty', h.qty,
        'd_on_hand', 0, 'd_reserved', 0 })
    end
  end
  emit('oversell_risk', sku, loc, { 'shortfall', shortfall, 'flagged', flagged,
    'flagged_ids', table.concat(ids, ',') })
  return flagged
end

local function read_position(sku, loc)
  local p = redis.call('HMGET', pos_key(sku, loc), ON_HAND, RESERVED, SAFETY, COUNT_AS_OF)
  return num(p[1]), num(p[2]), num(p[3]), p[4]
end

-- The units of a position beyond the shelf: damaged, quality_control, in_transit.
local function read_buckets(sku, loc)
  local p = redis.call('HMGET', pos_key(sku, loc), DAMAGED, QUALITY_CONTROL, IN_TRANSIT)
  return num(p[1]), num(p[2]), num(p[3])
end

-- Add `delta` units to one bucket of a position (ON_HAND, DAMAGED, QUALITY_CONTROL,
-- IN_TRANSIT), deleting the field when it reaches 0 (a position stores no zeros). Returns the
-- bucket's units after.
local function add_units(sku, loc, field, delta)
  local pk = pos_key(sku, loc)
  local after = redis.call('HINCRBY', pk, field, delta)
  if after == 0 then redis.call('HDEL', pk, field) end
  return after
end

-- Emit one bucket event (BUCKET_KINDS in stocksync/domain/events.py) about a position whose
-- buckets were just written: its units ('qty'), the deltas `d` (bucket field -> units) as
-- d_on_hand, d_reserved (0) and the nonzero d_damaged, d_quality_control, d_in_transit, every
-- bucket after it, then `extra`. A nonzero d_on_hand is a physical delta for the as-of rule,
-- recorded when it occurred: `occurred` (a source reporting late; nil = now).
-- Returns the event's seq.
local function emit_bucket_event(kind, sku, loc, qty, d, extra, occurred)
  local on_hand, reserved = read_position(sku, loc)
  local damaged, qc, in_transit = read_buckets(sku, loc)
  local d_on_hand = d[ON_HAND] or 0
  local fields = { 'qty', qty, 'd_on_hand', d_on_hand, 'd_reserved', 0 }
  for _, pair in ipairs({ { 'd_damaged', DAMAGED }, { 'd_quality_control', QUALITY_CONTROL },
    { 'd_in_transit', IN_TRANSIT } }) do
    local v = d[pair[2]] or 0
    if v ~= 0 then table.insert(fields, pair[1]); table.insert(fields, v) end
  end
  for _, v in ipairs({ 'on_hand', on_hand, 'reserved', reserved, 'damaged', damaged,
    'quality_control', qc, 'in_transit', in_transit }) do table.insert(fields, v) end
  for _, v in ipairs(extra) do table.insert(fields, v) end
  occurred = occurred or NOW
  if occurred < NOW then
    table.insert(fields, 'occurred_at'); table.insert(fields, occurred)
  end
  local seq = emit(kind, sku, loc, fields)
  if d_on_hand ~= 0 then record_delta(sku, loc, occurred, seq, d_on_hand) end
  return seq
end

-- A position's arrivals as one string: '<kind>:<id>|<qty>|<expected ms or empty>' joined by
-- ';' (kind 's' supply, 't' transfer), '' when none. Parsed by
-- stocksync.store.replies.parse_arrivals.
local function arrivals_text(sku, loc)
  local flat = redis.call('HGETALL', arrivals_key(sku, loc))
  local parts = {}
  for i = 1, #flat, 2 do table.insert(parts, flat[i] .. '|' .. flat[i + 1]) end
  table.sort(parts)
  return table.concat(parts, ';')
end

-- One position row of read_positions.lua and nearby.lua (stocksync.store.replies.POSITION_ROW
-- fields): loc, on_hand, reserved, safety, the location's kind, name, lat, lon, pickup, ship
-- (`l`, an HMGET of its hash), then damaged, quality_control, in_transit, arrivals_text.
local function position_row(out, sku, loc, l)
  local on_hand, reserved, safety = read_position(sku, loc)
  local damaged, qc, in_transit = read_buckets(sku, loc)
  for _, v in ipairs({ loc, on_hand, reserved, safety, l[1], l[2], l[3] or '', l[4] or '',
    l[5], l[6], damaged, qc, in_transit, arrivals_text(sku, loc) }) do table.insert(out, v) end
end

-- Replay or refuse a stock change already seen under (source, source_event_id).
local function check_idempotency(ik, fp)
  local rec = redis.call('HMGET', ik, 'fp', 'applied', 'on_hand', 'reserved', 'safety', 'seq')
  if not rec[1] then return nil end
  if rec[1] ~= fp then return { 'idempotency_conflict' } end
  return { 'replay', num(rec[2]), num(rec[3]), num(rec[4]), num(rec[5]), num(rec[6]), 0 }
end

-- The checks every stock change makes before it writes: the location exists, the SKU is not
-- frozen, and (source, source_event_id) — when given (ik) — was not used for another change.
-- Returns a refusal, the replay of the same change made before, or nil to go on.
local function check_stock_change(sku, loc, ik, fp)
  if redis.call('EXISTS', loc_key(loc)) == 0 then return { 'unknown_location', loc } end
  if regressed_sku({ { sku } }) then return { 'stock_regressed', sku } end
  if ik then return check_idempotency(ik, fp) end
  return nil
end

local function store_idempotency(ik, fp, applied, on_hand, reserved, safety, seq)
  redis.call('HSET', ik, 'fp', fp, 'applied', applied, 'on_hand', on_hand,
    'reserved', reserved, 'safety', safety, 'seq', seq)
  redis.call('EXPIRE', ik, RETENTION)
end

-- When a change happened, from a caller's 'occurred_at' in ms ('' or absent = now), clamped to
-- now: a change cannot have happened after the engine applies it (a source's clock ahead).
local function occurred_at(arg)
  if arg and arg ~= '' then return math.min(tonumber(arg), NOW) end
  return NOW
end

-- Apply a physical delta at a position (adjust.lua, and the units of a till sale that no hold
-- covered), idempotency already checked. A delta that occurred at or before the newest applied
-- count is already in that count: it is recorded in the outbox, not applied. A delta happening
-- now (no occurred_at, or one clamped to now) is never stale: scripts run one at a time, so it
-- came after any count already applied, even one whose as_of is this same millisecond. A till
-- cannot be refused (DESIGN rule 8): a negative delta is applied even when it drives
-- availability below zero; when fewer units are left on hand than are reserved, holds there
-- are flagged at risk.
-- `reaped`: the caller knows no hold is due at the position (stock_changes.lua), else they
-- are reaped here first.
-- Returns applied (1, or 0 when stale), on_hand, reserved, safety, seq, flagged.
local function apply_delta(sku, loc, delta, reason, source, event_id, occurred, fp, reaped)
  if not reaped then reap_position(sku, loc) end
  local on_hand, reserved, safety, count_as_of = read_position(sku, loc)
  local event = { 'delta', delta, 'reason', reason, 'src', source, 'src_id', event_id,
    'occurred_at', occurred, 'fp', fp }

  if count_as_of and occurred < NOW and occurred <= tonumber(count_as_of) then
    table.insert(event, 'on_hand'); table.insert(event, on_hand)
    table.insert(event, 'reserved'); table.insert(event, reserved)
    local seq = emit('adjust_stale', sku, loc, event)
    return 0, on_hand, reserved, safety, seq, 0
  end

  local new_on_hand = redis.call('HINCRBY', pos_key(sku, loc), ON_HAND, delta)
  redis.call('SADD', sku_locs_key(sku), loc)
  for _, v in ipairs({ 'd_on_hand', delta, 'd_reserved', 0, 'on_hand', new_on_hand,
    'reserved', reserved }) do table.insert(event, v) end
  local seq = emit('adjusted', sku, loc, event)
  record_delta(sku, loc, occurred, seq, delta)

  local flagged = 0
  if delta < 0 and new_on_hand < reserved then
    flagged = flag_at_risk(sku, loc, reserved - new_on_hand)
  end
  return 1, new_on_hand, reserved, safety, seq, flagged
end

-- Apply an absolute count at a position (set_count.lua, and each count row of
-- stock_changes.lua), after check_stock_change let it through and due holds there were reaped
-- (reap_position). on_hand becomes count + the
-- deltas that occurred after as_of. A count older than the newest applied count (or older than
-- the kept delta window) is recorded in the outbox, not applied. `expected` ('' = none) is a
-- compare-and-set, `safety_arg` ('' = unchanged) the new safety stock; `ik` the idempotency
-- record's key (nil: the count has no source_event_id).
-- Returns 'ok', applied (1, or 0 when stale), on_hand, reserved, safety, seq, flagged;
-- or 'on_hand_mismatch', on_hand (nothing written).
local function apply_count(sku, loc, count, as_of_arg, expected, safety_arg, source, event_id,
  fp, ik)
  local on_hand, reserved, safety, count_as_of = read_position(sku, loc)
  if expected ~= '' and tonumber(expected) ~= on_hand then
    return 'on_hand_mismatch', on_hand
  end

  local as_of = NOW
  if as_of_arg ~= '' then as_of = math.min(tonumber(as_of_arg), NOW) end
  if (count_as_of and as_of < tonumber(count_as_of)) or as_of < NOW - DELTA_WINDOW_MS then
    local seq = emit('count_stale', sku, loc, { 'fp', fp, 'count', count, 'as_of', as_of,
      'src', source, 'src_id', event_id, 'on_hand', on_hand, 'reserved', reserved })
    if ik then store_idempotency(ik, fp, 0, on_hand, reserved, safety, seq) end
    return 'ok', 0, on_hand, reserved, safety, seq, 0
  end

  local dk = deltas_key(sku, loc)
  local after = 0
  for _, m in ipairs(redis.call('ZRANGEBYSCORE', dk, '(' .. as_of, '+inf')) do
    after = after + tonumber(string.match(m, ':(-?%d+)$'))
  end
  local new_on_hand = count + after
  if safety_arg ~= '' then safety = tonumber(safety_arg) end
  local pk = pos_key(sku, loc)
  -- reserved is not the count's to change; safety is written only when given (absent = 0)
  if safety_arg ~= '' and safety ~= 0 then
    redis.call('HSET', pk, ON_HAND, new_on_hand, COUNT_AS_OF, as_of, SAFETY, safety)
  else
    redis.call('HSET', pk, ON_HAND, new_on_hand, COUNT_AS_OF, as_of)
    if safety_arg ~= '' then redis.call('HDEL', pk, SAFETY) end
  end
  redis.call('SADD', sku_locs_key(sku), loc)
  redis.call('ZREMRANGEBYSCORE', dk, '-inf', as_of)
  local seq = emit('counted', sku, loc, { 'fp', fp, 'count', count, 'as_of', as_of,
    'src', source, 'src_id', event_id, 'd_on_hand', new_on_hand - on_hand, 'd_reserved', 0,
    'on_hand', new_on_hand, 'reserved', reserved, 'safety', safety })

  local flagged = 0
  if new_on_hand < on_hand and new_on_hand < reserved then
    flagged = flag_at_risk(sku, loc, reserved - new_on_hand)
  end
  if ik then store_idempotency(ik, fp, 1, new_on_hand, reserved, safety, seq) end
  return 'ok', 1, new_on_hand, reserved, safety, seq, flagged
end

-- Success reply of a reservation script: {'ok', flag, field, value, ...} of the stored hash.
local function reply_reservation(flag, rk)
  local reply = redis.call('HGETALL', rk)
  table.insert(reply, 1, flag)
  table.insert(reply, 1, 'ok')
  return reply
end

-- ---- operation script follows ----
