-- reserve.lua: POST /v1/reservations, a unique reservation_id per request, 1 unit of the hot SKU.
-- wrk args: API key, sku, location id, run tag (keeps ids unique across runs on one Redis).
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local common = dofile(dir .. "common.lua")

n_ok, n_released, n_failed = 0, 0, 0

setup = common.setup

local headers, prefix, sku, loc
local counter = 0

init = function(args)
  local key, tag
  key, sku, loc, tag = common.args(args)
  headers = { ["Authorization"] = "Bearer " .. key, ["Content-Type"] = "application/json" }
  prefix = tag .. "-" .. tostring(thread_no) .. "-"
end

request = function()
  counter = counter + 1
  local body = '{"reservation_id":"' .. prefix .. counter .. '","channel":"web","lines":' ..
    '[{"sku":"' .. sku .. '","location_id":"' .. loc .. '","qty":1}],"ttl_seconds":600}'
  return wrk.format("POST", "/v1/reservations", headers, body)
end

response = function(status, headers, body)
  if status == 201 then n_ok = n_ok + 1 else n_failed = n_failed + 1 end
end

done = common.done
