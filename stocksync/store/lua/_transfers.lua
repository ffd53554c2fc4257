-- _transfers.lua: helpers of the transfer scripts (transfer_ship, transfer_receive,
-- transfer_cancel, list_transfers). A transfer's hash is transfer_key (fields in
-- stocksync/store/keys.py); its states are named here once (they are not a reservation's).
-- Few top-level locals: the library's main chunk holds at most 200 (Lua 5.1).

local TRANSFER = { SHIPPED = 'shipped', RECEIVED = 'received', CANCELLED = 'cancelled' }

-- Success reply of a transfer script: {'ok', flag, at_risk, field, value, ...} of the stored
-- hash (flag 1: changed now, 0: a replay; at_risk: holds a forced shipment flagged).
local function reply_transfer(flag, at_risk, xk)
  local reply = redis.call('HGETALL', xk)
  table.insert(reply, 1, at_risk)
  table.insert(reply, 1, flag)
  table.insert(reply, 1, 'ok')
  return reply
end

-- The locations a caller may touch: nil for any ('' : an unbound key, an internal caller),
-- else a set from '<loc>,<loc>,...'.
local function allowed_locations(access)
  if access == '' then return nil end
  local allowed = {}
  for loc in string.gmatch(access, '[^,]+') do allowed[loc] = true end
  return allowed
end

-- A location's transfer index (loc_transfers_key) drops, per write, up to 32 of its entries
-- older than the retention whose transfer is gone (a terminal one expires a retention after it
-- ended). One still in transit, or ended less than a retention ago, keeps
-- its entry: it is still listed where GET finds it.
local function trim_transfers(loc)
  local lk = loc_transfers_key(loc)
  local cutoff = '(' .. (NOW - RETENTION * 1000)
  for _, old in ipairs(redis.call('ZRANGEBYSCORE', lk, '-inf', cutoff, 'LIMIT', 0, 32)) do
    if redis.call('EXISTS', transfer_key(old)) == 0 then redis.call('ZREM', lk, old) end
  end
end

-- A transfer ended (received or cancelled): kept for the retention, then gone.
local function end_transfer(xk, from, to)
  redis.call('EXPIRE', xk, RETENTION)
  trim_transfers(from)
  trim_transfers(to)
end

-- The in_transit units a transfer's lines put at the target are still there (only transfers
-- change in_transit). Returns a refusal, or nil.
local function check_in_transit(lines, to)
  for _, ln in ipairs(lines) do
    local _, _, in_transit = read_buckets(ln[1], to)
    if in_transit < ln[2] then
      return { 'insufficient_units', 'in_transit', ln[1], to, ln[2], in_transit }
    end
  end
  return nil
end
