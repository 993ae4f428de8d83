-- wrk script: POSTs one fixed JSON body and prints a machine-readable summary when done.
--
-- Environment:
--   BENCH_BODY     path of the request body (JSON)
--   BENCH_HEADERS  extra headers, one "Name: value" per line (Authorization, x-portkey-*, ...)
--
-- The request is built once (no request() callback), so wrk stays on its fast path, and no
-- response() callback is installed (that would run Lua for every response). wrk counts answers
-- with status >= 400 in summary.errors.status; socket errors and timeouts separately.

local function read_file(path)
  local f = assert(io.open(path, "rb"), "cannot open BENCH_BODY " .. tostring(path))
  local data = f:read("*a")
  f:close()
  return data
end

wrk.method = "POST"
wrk.body = read_file(os.getenv("BENCH_BODY"))
wrk.headers["Content-Type"] = "application/json"
for line in (os.getenv("BENCH_HEADERS") or ""):gmatch("[^\n]+") do
  local name, value = line:match("^%s*([^:]+):%s*(.-)%s*$")
  if name then
    wrk.headers[name] = value
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH_RESULT {\"duration_us\":%d,\"requests\":%d,\"bytes\":%d," ..
    "\"errors\":{\"connect\":%d,\"read\":%d,\"write\":%d,\"status\":%d,\"timeout\":%d}," ..
    "\"latency_us\":{\"min\":%d,\"mean\":%.2f,\"max\":%d,\"stdev\":%.2f," ..
    "\"p50\":%d,\"p90\":%d,\"p99\":%d,\"p99.9\":%d}}\n",
    summary.duration, summary.requests, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.min, latency.mean, latency.max, latency.stdev,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9)))
end
