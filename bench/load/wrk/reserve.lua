-- reserve.lua: POST /v1/reservations, a unique reservation_id per request, 1 unit of the hot SKU.
-- wrk args: API key, sku, location id, run tag (keeps ids unique across runs on one Redis).
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local common = dofile(dir .. "common.lua")

n_ok, n_released, n_failed = 0, 0, 0

setup = common.setup

local headers, reserve

init = function(args)
  headers, reserve = common.reserver(args)
end

request = function()
  return reserve()
end

response = function(status, headers, body)
  if status == 201 then n_ok = n_ok + 1 else n_failed = n_failed + 1 end
end

done = common.done
