-- wrk script for bench/ingest.py (and bench/soak.py):
--   wrk -s bench/ingest.lua URL -- MODE CODE HOST VISITORS [DELAY_MS [STREAM]]
--
-- MODE "empty"   GET  /bench/empty   (the baseline Django view)
--      "json"    POST /bench/json    (collect's decorators and body, no ingest)
--      "collect" POST /e/collect     (a tracker pageview, as z.js sends it)
--
-- POSTs look like navigator.sendBeacon from desktop browsers: text/plain JSON,
-- rotating pages and referrers, and X-Forwarded-For drawn from a pool of VISITORS
-- public addresses per thread, so visitors (and their sessions) differ and repeat.
-- DELAY_MS > 0: each connection waits that long before each request (wrk's delay()),
-- capping the rate at connections * 1000 / DELAY_MS per second; absent or 0: no wait.
-- STREAM numbers the wrk processes of one run (default 0): each thread of each process
-- draws its own visitors, so servers loaded by separate wrk processes get different ones.
-- Each thread counts response statuses; done() prints one "BENCH_RESULT {json}" line.

local agents = {
  "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
  "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
  "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36",
  "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
}

local pages = {
  "/",
  "/pricing",
  "/blog/",
  "/blog/real-time-analytics-without-cookies",
  "/docs/getting-started",
  "/docs/api/collect",
  "/about",
  "/products/widget?utm_source=newsletter&utm_medium=email&utm_campaign=spring",
}

local referrers = {
  "null", "null", "null",
  '"https://www.google.com/"',
  '"https://news.ycombinator.com/"',
  '"https://duckduckgo.com/"',
  '"https://bench.example/"',
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

local mode, code, host
local visitors = {}
local fixed_request
local pause = 0

function init(args)
  mode = args[1] or "empty"
  code = args[2] or ""
  host = args[3] or "bench.example"
  local pool = tonumber(args[4] or "2000")
  pause = tonumber(args[5] or "0")
  local stream = tonumber(args[6] or "0")
  if pause > 0 then
    -- Defined only when asked for: wrk checks for delay() after init(), and without it
    -- sends the next request at once (no timer per request).
    delay = function()
      return pause
    end
  end
  statuses = {}  -- global: read back by done() through thread:get
  math.randomseed(1000 + 7919 * (thread_id or 1) + 104729 * stream)
  for i = 1, pool do
    visitors[i] = {
      ip = string.format("%d.%d.%d.%d", octets[math.random(#octets)], math.random(0, 255),
        math.random(0, 255), math.random(1, 254)),
      agent = agents[math.random(#agents)],
    }
  end
  if mode == "empty" then
    fixed_request = wrk.format("GET", "/bench/empty", {
      ["User-Agent"] = agents[1],
      ["Accept"] = "*/*",
    })
  end
end

local function beacon(path)
  local visitor = visitors[math.random(#visitors)]
  local page = pages[math.random(#pages)]
  local body = string.format(
    '{"code":"%s","type":"pageview","url":"https://%s%s","referrer":%s}',
    code, host, page, referrers[math.random(#referrers)])
  return wrk.format("POST", path, {
    ["Content-Type"] = "text/plain;charset=UTF-8",
    ["User-Agent"] = visitor.agent,
    ["Accept"] = "*/*",
    ["Accept-Language"] = "en-US,en;q=0.9",
    ["Origin"] = "https://" .. host,
    ["Referer"] = "https://" .. host .. page,
    ["X-Forwarded-For"] = visitor.ip,
  }, body)
end

function request()
  if fixed_request then
    return fixed_request
  end
  if mode == "json" then
    return beacon("/bench/json")
  end
  return beacon("/e/collect")
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
