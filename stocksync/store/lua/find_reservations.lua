-- find_reservations.lua: active reservations from one index, expiring due ones first.
--
-- ARGV[3] index: 'loc' (ARGV[4] = location id) | 'cust' (ARGV[4] = customer_ref)
--                | 'atrisk' (ARGV[4] ignored)
-- ARGV[5] limit   ARGV[6] '1' = only reservations flagged at risk
-- ARGV[7…] states to include (none = every active state)
--
-- Every index read is ordered (deadline, then created_at, id: see index_reservation) and read
-- with a LIMIT: a location's pick list reads its per-state indexes, so 50 confirmed among
-- 100,000 held cost O(50 + log n). Up to REAP_PER_CALL due entries per index are expired
-- first; entries still due after that are left to the reaper and not listed. At-risk holds
-- of a customer are read from the smaller of the two indexes (the same order), filtered by
-- the other; such a filter examines SCAN_MAX entries at most.
-- Index entries of reservations that are no longer active are dropped on the way.
-- Returns {{id, field, value, ...}, ...}, ordered by deadline (none last), then created_at, id.

local index = ARGV[3]
local arg = ARGV[4]
local limit = tonumber(ARGV[5])
local at_risk_only = ARGV[6] == '1'
local wanted = {}
local any_state = NARGS < 7
for i = 7, NARGS do wanted[ARGV[i]] = true end
local SCAN_MAX = 500
local customer = nil -- only reservations of this customer_ref

local keys = {}
if index == 'loc' and at_risk_only then
  keys = { locrisk_key(arg) }
elseif index == 'loc' then
  for state in pairs(ACTIVE) do
    if any_state or wanted[state] then table.insert(keys, locstate_key(arg, state)) end
  end
elseif index == 'cust' then
  keys = { bycust_key(arg) }
  if at_risk_only and redis.call('ZCARD', ATRISK) < redis.call('ZCARD', keys[1]) then
    keys, customer = { ATRISK }, arg
  end
else
  keys = { ATRISK }
end

-- Up to `limit` entries of one index whose deadline has not passed and that pass the filters,
-- in index order: {score, member}.
local function read(key)
  local out, stale, offset = {}, {}, 0
  while #out < limit and offset < SCAN_MAX do
    local page = redis.call('ZRANGEBYSCORE', key, '(' .. NOW, '+inf', 'WITHSCORES',
      'LIMIT', offset, math.min(limit, SCAN_MAX - offset))
    if #page == 0 then break end
    offset = offset + #page / 2
    for i = 1, #page, 2 do
      local r = redis.call('HMGET', res_key(member_id(page[i])), 'state', 'at_risk',
        'customer_ref')
      if not ACTIVE[r[1]] then
        table.insert(stale, page[i])
      elseif #out < limit and (any_state or wanted[r[1]]) and (r[2] == '1' or not at_risk_only)
          and (not customer or r[3] == customer) then
        table.insert(out, { tonumber(page[i + 1]) or math.huge, page[i] })
      end
    end
  end
  for _, m in ipairs(stale) do redis.call('ZREM', key, m) end
  return out
end

local found = {}
for _, key in ipairs(keys) do
  reap_ordered(key, REAP_PER_CALL)
  for _, entry in ipairs(read(key)) do table.insert(found, entry) end
end
if #keys > 1 then -- merge the per-state lists in index order
  table.sort(found, function(a, b)
    if a[1] ~= b[1] then return a[1] < b[1] end
    return a[2] < b[2]
  end)
end

local out = {}
for i = 1, math.min(limit, #found) do
  local id = member_id(found[i][2])
  local reply = redis.call('HGETALL', res_key(id))
  table.insert(reply, 1, id)
  table.insert(out, reply)
end
return out
