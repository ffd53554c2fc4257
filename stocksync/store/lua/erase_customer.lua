-- erase_customer.lua: remove a customer reference from every reservation that carries it
-- (GDPR erasure). Stock and states are untouched; the reference and its index go.
--
-- ARGV[3] customer_ref   ARGV[4…] further reservation ids known to carry it (the ledger's:
--         terminal reservations are no longer in the customer's index)
--
-- Returns {'ok', reservations cleared}

local cref = ARGV[3]
local ck = bycust_key(cref)
-- The customer's active reservations: few (max_active_holds_per_customer caps them).
local ids = {}
for _, m in ipairs(redis.call('ZRANGE', ck, 0, -1)) do table.insert(ids, member_id(m)) end
for i = 4, NARGS do table.insert(ids, ARGV[i]) end

local cleared = 0
local seen = {}
for _, id in ipairs(ids) do
  local rk = res_key(id)
  if not seen[id] and redis.call('HGET', rk, 'customer_ref') == cref then
    redis.call('HSET', rk, 'customer_ref', '')
    cleared = cleared + 1
  end
  seen[id] = true
end
redis.call('DEL', ck)
-- The ledger copy erases the reference from the ledger when it reaches this event, after every
-- earlier event that carried it: nothing copied later can bring it back.
emit('customer_erased', '', '', { 'cref', cref, 'cleared', cleared })
return { 'ok', cleared }
