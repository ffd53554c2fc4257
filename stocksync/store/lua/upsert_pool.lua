-- upsert_pool.lua: create or replace a channel pool (online stock) of this stock domain.
--
-- ARGV[3] pool_id   ARGV[4] name   ARGV[5] channels (JSON list)   ARGV[6] strategy
-- ARGV[7] locs: JSON [[location_id, priority, buffer], ...], sorted by priority, then id
--
-- Every location must be a location of this domain (the caller routed the call by their
-- domain; a location the directory did not know, or one moved away since, is refused here).
-- Returns {'ok', created 1|0}, or, nothing written: {'unknown_location', loc, ...} or
-- {'location_moving', loc} while a location moves to another stock domain.

local pool_id, name, channels, strategy, locs = ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]

local unknown = {}
for _, entry in ipairs(cjson.decode(locs)) do
  local loc = entry[1]
  if redis.call('EXISTS', moving_key(loc)) == 1 then return { 'location_moving', loc } end
  if redis.call('EXISTS', loc_key(loc)) == 0 then table.insert(unknown, loc) end
end
if #unknown > 0 then return { 'unknown_location', unpack(unknown) } end

local pk = pool_key(pool_id)
local created = 1 - redis.call('EXISTS', pk)
redis.call('HSET', pk, 'name', name, 'channels', channels, 'strategy', strategy, 'locs', locs,
  'updated_at', NOW)
redis.call('SADD', POOLS_KEY, pool_id)
-- Not about a SKU (no seq, no ledger movement): a record for the feed and the audit trail.
emit('pool_upserted', '', '', { 'pool', pool_id, 'name', name, 'strategy', strategy,
  'channels', channels, 'locs', locs })
return { 'ok', created }
