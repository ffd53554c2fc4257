-- reindex.lua: put active reservations written by an older release (layout 2 and before: sets
-- per key and customer, one zset per location by created_at) into this release's ordered
-- indexes (index_reservation). Idempotent: ZADD of the same members and scores.
--
-- ARGV[3…NARGS] reservation ids, from a ZSCAN of the active index (a bounded batch per call)
--
-- Returns how many of them were active and (re)indexed.

local n = 0
for i = 3, NARGS do
  local id = ARGV[i]
  local rk = res_key(id)
  local r = redis.call('HMGET', rk, 'state', 'lines')
  if ACTIVE[r[1]] then
    index_reservation(id, rk, cjson.decode(r[2]))
    n = n + 1
  end
end
return n
