-- find_reservations.lua: active reservations from one index, expiring due ones first.
--
-- ARGV[3] index: 'loc' (ARGV[4] = location id) | 'cust' (ARGV[4] = customer_ref)
--                | 'atrisk' (ARGV[4] ignored)
-- ARGV[5] limit   ARGV[6] '1' = only reservations flagged at risk
-- ARGV[7…] states to include (none = every active state)
--
-- Index entries of reservations that are no longer active are dropped on the way.
-- Returns {{id, field, value, ...}, ...}, ordered by deadline (none last), then created_at, id.

local index = ARGV[3]
local arg = ARGV[4]
local limit = tonumber(ARGV[5])
local at_risk_only = ARGV[6] == '1'
local wanted = {}
local any_state = NARGS < 7
for i = 7, NARGS do wanted[ARGV[i]] = true end

local key, ids
if index == 'loc' then
  key = locres_key(arg)
  ids = redis.call('ZRANGE', key, 0, -1)
elseif index == 'cust' then
  key = bycust_key(arg)
  ids = redis.call('SMEMBERS', key)
else
  key = ATRISK
  ids = redis.call('SMEMBERS', key)
end

local found = {}
for _, id in ipairs(ids) do
  expire_one(id, nil)
  local rk = res_key(id)
  local r = redis.call('HMGET', rk, 'state', 'expires_at', 'created_at', 'at_risk')
  if not ACTIVE[r[1]] then
    if index == 'loc' then redis.call('ZREM', key, id) else redis.call('SREM', key, id) end
  elseif (any_state or wanted[r[1]]) and (r[4] == '1' or not at_risk_only) then
    local deadline = math.huge
    if r[2] and r[2] ~= '' then deadline = tonumber(r[2]) end
    table.insert(found, { id = id, deadline = deadline, created = num(r[3]) })
  end
end
table.sort(found, function(a, b)
  if a.deadline ~= b.deadline then return a.deadline < b.deadline end
  if a.created ~= b.created then return a.created < b.created end
  return a.id < b.id
end)

local out = {}
for i = 1, math.min(limit, #found) do
  local reply = redis.call('HGETALL', res_key(found[i].id))
  table.insert(reply, 1, found[i].id)
  table.insert(out, reply)
end
return out
