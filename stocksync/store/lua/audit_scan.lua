-- audit_scan.lua: one SCAN step over the namespace's position keys, with each key's numbers,
-- for the audit. Read only.
--
-- ARGV[3] SCAN cursor ('0' to start)   ARGV[4] COUNT hint (the caller bounds it)
--
-- Returns a flat array: the next cursor ('0' when the scan is complete), then 3 values per
-- position key found: the key, on_hand, reserved (0 when absent).

-- pos_key('*', '*'): every position key (a location id has no ':').
local found = redis.call('SCAN', ARGV[3], 'MATCH', pos_key('*', '*'), 'COUNT', tonumber(ARGV[4]))
local out = { found[1] }
for _, key in ipairs(found[2]) do
  local pos = redis.call('HMGET', key, ON_HAND, RESERVED)
  table.insert(out, key)
  table.insert(out, num(pos[1]))
  table.insert(out, num(pos[2]))
end
return out
