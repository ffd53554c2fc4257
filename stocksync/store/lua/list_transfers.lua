-- list_transfers.lua: the transfers from or to a location, newest first (by created_at).
--
-- ARGV[3] location_id   ARGV[4] state ('' = any)   ARGV[5] direction: 'in' (to it), 'out'
-- (from it) or 'both'   ARGV[6] most transfers to return
--
-- Reads at most SCAN_MAX entries of the location's index, so a call stays short whatever the
-- index holds; entries of transfers gone (expired) are skipped.
--
-- Returns {'ok', {transfer_id, field, value, ...}, ...} | {'unknown_location', loc}

local loc = ARGV[3]
local wanted = ARGV[4]
local direction = ARGV[5]
local limit = tonumber(ARGV[6])

if redis.call('EXISTS', loc_key(loc)) == 0 then return { 'unknown_location', loc } end

local SCAN_MAX, PAGE = 2000, 200
local lk = loc_transfers_key(loc)
local out, start = { 'ok' }, 0
while #out - 1 < limit and start < SCAN_MAX do
  local page = redis.call('ZREVRANGE', lk, start, start + PAGE - 1)
  if #page == 0 then break end
  for _, id in ipairs(page) do
    local t = redis.call('HMGET', transfer_key(id), 'from', 'to', 'state')
    local matches = t[1] and (wanted == '' or t[3] == wanted)
      and (direction == 'both' or (direction == 'in' and t[2] == loc)
        or (direction == 'out' and t[1] == loc))
    if matches and #out - 1 < limit then
      local row = redis.call('HGETALL', transfer_key(id))
      table.insert(row, 1, id)
      table.insert(out, row)
    end
  end
  start = start + PAGE
end
return out
