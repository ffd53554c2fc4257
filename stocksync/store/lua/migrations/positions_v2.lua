-- positions_v2.lua: rewrite position hashes of the spelled-out layout (on_hand, reserved,
-- safety, count_as_of; zeros written) into the one-letter layout (o, r, s, c; absent = 0).
-- Self-contained (no _lib.lua): it runs before the operation scripts of this release do.
--
-- KEYS[1…] position keys of one namespace (one hash tag: one slot), found by SCAN
--
-- Returns how many keys were rewritten. A key already in the new layout is left as it is, so
-- a second pass (or two processes migrating at once) changes nothing. Should a key hold both
-- spellings, on_hand and reserved are summed (both only ever move by increments) and the new
-- safety / count_as_of win.

local LEGACY = { 'on_hand', 'reserved', 'safety', 'count_as_of' }
local rewritten = 0
for _, key in ipairs(KEYS) do
  local old = redis.call('HMGET', key, unpack(LEGACY))
  if old[1] or old[2] or old[3] or old[4] then
    local new = redis.call('HMGET', key, 'o', 'r', 's', 'c')
    local values = {
      (tonumber(new[1]) or 0) + (tonumber(old[1]) or 0),
      (tonumber(new[2]) or 0) + (tonumber(old[2]) or 0),
      tonumber(new[3]) or tonumber(old[3]) or 0,
      tonumber(new[4]) or tonumber(old[4]) or 0,
    }
    redis.call('HDEL', key, unpack(LEGACY))
    local set, zero = {}, {}
    for i, name in ipairs({ 'o', 'r', 's', 'c' }) do
      if values[i] ~= 0 then
        table.insert(set, name); table.insert(set, values[i])
      else
        table.insert(zero, name)
      end
    end
    -- A position of nothing but zeros keeps its key (as o = 0): deleting it would be a change.
    if #set == 0 then set = { 'o', 0 } end
    redis.call('HSET', key, unpack(set))
    if #zero > 0 then redis.call('HDEL', key, unpack(zero)) end
    rewritten = rewritten + 1
  end
end
return rewritten
