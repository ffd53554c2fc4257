-- check_regression.lua: freeze the SKUs whose Redis seq is behind the ledger's.
--
-- ARGV[3] JSON {sku: ledger_seq, ...}
--
-- Returns the SKUs newly frozen (their writes now answer stock_regressed).

local ledger = cjson.decode(ARGV[3])

local frozen = {}
for sku, ledger_seq in pairs(ledger) do
  local redis_seq = tonumber(redis.call('HGET', SEQ_KEY, sku) or '0')
  if redis_seq < ledger_seq and redis.call('SADD', REGRESSED_KEY, sku) == 1 then
    table.insert(frozen, sku)
  end
end
return frozen
