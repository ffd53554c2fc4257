-- common.lua: shared by the bench wrk scripts (loaded with dofile from the script's directory).
-- Counts responses by outcome in each thread and prints one machine-readable summary line.

local M = {}

local threads = {}

-- Remembers the thread for done() and numbers it (the number keeps reservation ids apart).
function M.setup(thread)
  table.insert(threads, thread)
  thread:set("thread_no", #threads)
end

-- Reads the script arguments: key, sku, location, run tag.
function M.args(args)
  return args[1] or "", args[2] or "SKU", args[3] or "loc", args[4] or "run"
end

-- Reads the script arguments and returns the request headers and a function making the next
-- reserve request: 1 unit of the SKU under a new reservation_id (run tag, thread, counter).
-- Call it from init(), where thread_no is set.
function M.reserver(args)
  local key, sku, loc, tag = M.args(args)
  local headers = { ["Authorization"] = "Bearer " .. key, ["Content-Type"] = "application/json" }
  local prefix = tag .. "-" .. tostring(thread_no) .. "-"
  local counter = 0
  return headers, function()
    counter = counter + 1
    local body = '{"reservation_id":"' .. prefix .. counter .. '","channel":"web","lines":' ..
      '[{"sku":"' .. sku .. '","location_id":"' .. loc .. '","qty":1}],"ttl_seconds":600}'
    return wrk.format("POST", "/v1/reservations", headers, body)
  end
end

function M.done(summary, latency, requests)
  local counts = { ok = 0, released = 0, failed = 0 }
  for _, thread in ipairs(threads) do
    for name, _ in pairs(counts) do
      counts[name] = counts[name] + (thread:get("n_" .. name) or 0)
    end
  end
  -- 1000 evenly spaced quantiles (0.05 %, 0.15 %, ... 99.95 %) so runs can be merged.
  local quantiles = {}
  for k = 1, 1000 do
    quantiles[k] = tostring(latency:percentile((k - 0.5) / 10))
  end
  local e = summary.errors
  io.write(string.format(
    'BENCHJSON {"requests":%d,"duration_us":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,' ..
    '"max_us":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,' ..
    '"ok":%d,"released":%d,"failed":%d,"quantiles_us":[%s]}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, e.connect, e.read, e.write, e.status, e.timeout,
    counts.ok, counts.released, counts.failed, table.concat(quantiles, ",")))
end

return M
