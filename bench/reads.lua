-- wrk script for bench/api.py and bench/soak.py:
--   wrk -s bench/reads.lua URL -- VISITORS SEED DELAY_MS PATH [PATH ...]
--
-- GETs the PATHs in turn (one path: always that one), each with an X-Forwarded-For drawn
-- from a pool of VISITORS public addresses per thread (seeded by SEED and the thread),
-- so that the per-IP rate limits of the public API are not what is measured: run the
-- server with ZENOVAY_TRUSTED_PROXIES=127.0.0.1/32. Requests look like a widget's
-- fetch() from a customer's page. DELAY_MS > 0: each connection waits that long before
-- each request (wrk's delay()), which caps the rate at connections * 1000 / DELAY_MS per
-- second; 0: as fast as the server answers. Each thread counts response statuses; done() prints
-- one "BENCH_RESULT {json}" line (the same shape as bench/ingest.lua's).

local agents = {
  "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
  "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
  "Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0",
  "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
}

-- First octets of ordinary allocated unicast space (no private, loopback or test nets).
local octets = { 23, 31, 37, 45, 51, 62, 78, 81, 88, 91, 95, 104, 142, 151, 176, 185, 188, 212, 213, 217 }

local threads = {}
local next_id = 0

function setup(thread)
  next_id = next_id + 1
  thread:set("thread_id", next_id)
  table.insert(threads, thread)
end

local paths = {}
local visitors = {}
local turn = 0
local pause = 0

function init(args)
  local pool = tonumber(args[1] or "5000")
  local seed = tonumber(args[2] or "1")
  pause = tonumber(args[3] or "0")
  if pause > 0 then
    -- Defined only when asked for: wrk checks for delay() after init(), and without it
    -- sends the next request at once (no timer per request).
    delay = function()
      return pause
    end
  end
  for i = 4, #args do
    table.insert(paths, args[i])
  end
  if #paths == 0 then
    paths = { "/bench/empty" }
  end
  statuses = {}  -- global: read back by done() through thread:get
  math.randomseed(seed * 7919 + 104729 * (thread_id or 1))
  for i = 1, pool do
    visitors[i] = {
      ip = string.format("%d.%d.%d.%d", octets[math.random(#octets)], math.random(0, 255),
        math.random(0, 255), math.random(1, 254)),
      agent = agents[math.random(#agents)],
    }
  end
end

function request()
  turn = turn % #paths + 1
  local visitor = visitors[math.random(#visitors)]
  return wrk.format("GET", paths[turn], {
    ["User-Agent"] = visitor.agent,
    ["Accept"] = "*/*",
    ["Accept-Language"] = "en-US,en;q=0.9",
    ["Origin"] = "https://www.customer.example",
    ["X-Forwarded-For"] = visitor.ip,
  })
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local merged = {}
  for _, thread in ipairs(threads) do
    for status, count in pairs(thread:get("statuses")) do
      merged[status] = (merged[status] or 0) + count
    end
  end
  local parts = {}
  for status, count in pairs(merged) do
    table.insert(parts, string.format('"%d":%d', status, count))
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests":%d,"duration_us":%d,"bytes":%d,'
      .. '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f,'
      .. '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},'
      .. '"statuses":{%s}}\n',
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean,
    e.connect, e.read, e.write, e.status, e.timeout,
    table.concat(parts, ",")))
end
