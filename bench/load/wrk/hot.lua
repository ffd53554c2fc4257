-- hot.lua: the flash sale. Every request reserves 1 unit of the hot SKU with a new reservation_id;
-- counts 201 (sold), 409 (sold out) and anything else, and times the race with CLOCK_MONOTONIC:
-- from the first request sent to the last 201 received. wrk args as for reserve.lua.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local common = dofile(dir .. "common.lua")
local ffi = require("ffi")

ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
  int clock_gettime(int clk_id, bench_timespec *tp);
]]
local ts = ffi.new("bench_timespec")
local function now_us()
  ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC: one clock for every thread
  return tonumber(ts.tv_sec) * 1000000 + math.floor(tonumber(ts.tv_nsec) / 1000)
end

n_ok, n_released, n_failed, n_short = 0, 0, 0, 0
first_send_us, last_ok_us = 0, 0

local threads = {}
setup = function(thread)
  table.insert(threads, thread)
  common.setup(thread)
end

local headers, reserve

init = function(args)
  headers, reserve = common.reserver(args)
end

request = function()
  if first_send_us == 0 then first_send_us = now_us() end
  return reserve()
end

response = function(status, headers, body)
  if status == 201 then
    n_ok = n_ok + 1
    last_ok_us = now_us()
  elseif status == 409 and body:find("insufficient_stock", 1, true) then
    n_short = n_short + 1
  else
    n_failed = n_failed + 1
  end
end

done = function(summary, latency, requests)
  local first, last, short = 0, 0, 0
  for _, thread in ipairs(threads) do
    local sent = thread:get("first_send_us") or 0
    if sent > 0 and (first == 0 or sent < first) then first = sent end
    last = math.max(last, thread:get("last_ok_us") or 0)
    short = short + (thread:get("n_short") or 0)
  end
  io.write(string.format('HOTJSON {"first_send_us":%d,"last_ok_us":%d,"short":%d}\n',
    first, last, short))
  common.done(summary, latency, requests)
end
