-- audit_scan.lua: one SCAN step over the namespace's position keys, for the audit. Read only.
--
-- ARGV[3] SCAN cursor ('0' to start)   ARGV[4] COUNT hint (the caller bounds it)
--
-- Returns { next cursor ('0' when the scan is complete), the position keys found, one a line }.
-- Keys only, as one string: a reply of one element instead of one per key (the audit reads the
-- numbers of the few positions the ledger has no row for afterwards).

-- pos_key('*', '*'): every position key (a location id has no ':').
local found = redis.call('SCAN', ARGV[3], 'MATCH', pos_key('*', '*'), 'COUNT', tonumber(ARGV[4]))
return { found[1], table.concat(found[2], '\n') }
