-- pair.lua: reserve, then release each held reservation with the next request a connection
-- sends (from a per-thread queue). wrk args as for reserve.lua.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local common = dofile(dir .. "common.lua")

n_ok, n_released, n_failed = 0, 0, 0

setup = common.setup
done = common.done

local headers, prefix, sku, loc
local counter = 0
local queue, head, tail = {}, 1, 0

init = function(args)
  local key, tag
  key, sku, loc, tag = common.args(args)
  headers = { ["Authorization"] = "Bearer " .. key, ["Content-Type"] = "application/json" }
  prefix = tag .. "-" .. tostring(thread_no) .. "-"
end

request = function()
  if head <= tail then
    local id = queue[head]
    queue[head] = nil
    head = head + 1
    return wrk.format("POST", "/v1/reservations/" .. id .. "/release", headers, "{}")
  end
  counter = counter + 1
  local body = '{"reservation_id":"' .. prefix .. counter .. '","channel":"web","lines":' ..
    '[{"sku":"' .. sku .. '","location_id":"' .. loc .. '","qty":1}],"ttl_seconds":600}'
  return wrk.format("POST", "/v1/reservations", headers, body)
end

response = function(status, headers, body)
  if status == 201 then
    n_ok = n_ok + 1
    tail = tail + 1
    queue[tail] = body:match('"reservation_id":"([^"]+)"')
  elseif status == 200 then
    n_released = n_released + 1
  else
    n_failed = n_failed + 1
  end
end
