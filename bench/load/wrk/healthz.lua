-- healthz.lua: GET /healthz (no auth, no Redis): the bare framework baseline.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local common = dofile(dir .. "common.lua")

n_ok, n_released, n_failed = 0, 0, 0

setup = common.setup
done = common.done

local req

init = function(args)
  req = wrk.format("GET", "/healthz")
end

request = function()
  return req
end

response = function(status, headers, body)
  if status == 200 then n_ok = n_ok + 1 else n_failed = n_failed + 1 end
end
