-- pair.lua: reserve, then release each held reservation with the next request a connection
-- sends (from a per-thread queue). wrk args as for reserve.lua.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local common = dofile(dir .. "common.lua")

n_ok, n_released, n_failed = 0, 0, 0

setup = common.setup
done = common.done

local headers, reserve
local queue, head, tail = {}, 1, 0

init = function(args)
  headers, reserve = common.reserver(args)
end

request = function()
  if head <= tail then
    local id = queue[head]
    queue[head] = nil
    head = head + 1
    return wrk.format("POST", "/v1/reservations/" .. id .. "/release", headers, "{}")
  end
  return reserve()
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
