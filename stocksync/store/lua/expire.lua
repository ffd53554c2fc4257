-- expire.lua: the background reaper's pass. Expires up to ARGV[3] reservations whose deadline
-- passed, oldest first.
--
-- ARGV[3] limit
--
-- Returns {expired, lag_ms, active}: how many expired now, how late the oldest due one was
-- (0 when none was due) and how many reservations remain active.

local limit = tonumber(ARGV[3])

local due = redis.call('ZRANGEBYSCORE', ACTIVE_KEY, '-inf', NOW, 'WITHSCORES', 'LIMIT', 0, limit)
local lag = 0
if #due > 0 then lag = NOW - tonumber(due[2]) end
local expired = 0
for i = 1, #due, 2 do expired = expired + expire_one(due[i], nil) end
return { expired, lag, redis.call('ZCARD', ACTIVE_KEY) }
