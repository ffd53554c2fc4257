-- claim_reservation.lua: the directory's record of which stock domain holds a reservation id
-- (KEYS[1] is the namespace directory's anchor, not a domain's). The first reserve of an id
-- claims it for its domain; a reserve of the same id in another domain finds the claim and is
-- refused (the id is the idempotency key, across domains too).
--
-- ARGV[3] reservation_id   ARGV[4] domain
-- ARGV[5] (optional) a domain whose claim this one replaces: the caller's route to it was
--         stale (the location moved to another domain) and its reserve there answered
--         unknown_location, so no reservation of the id is in it
--
-- Returns the domain that holds the id (ARGV[4] when this call claimed it).

local key = resdomain_key()
local id, domain = ARGV[3], ARGV[4]
local replaces = ''
if NARGS >= 5 then replaces = ARGV[5] end
local held = redis.call('HGET', key, id)
if held then
  local sep = string.find(held, '|', 1, true)
  local holder = string.sub(held, 1, (sep or 0) - 1)
  if replaces == '' or holder ~= replaces then return holder end
end
redis.call('HSET', key, id, domain .. '|' .. NOW)
return domain
