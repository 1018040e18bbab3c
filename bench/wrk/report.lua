-- wrk script shared by every case: optional request shape from the environment, and a
-- machine-readable summary (including p99.9, which `wrk --latency` does not print)
-- written by done() to $BENCH_REPORT as "key value" lines.
--
-- Only globals are set (no request()/response() callbacks), so wrk keeps its fast
-- path: one pre-formatted request reused for every call, identical in cost for every
-- case. Non-2xx detection therefore relies on wrk's own counter (status > 399);
-- bench/run checks each case's exact status with curl before measuring.

local method = os.getenv("BENCH_METHOD")
local body = os.getenv("BENCH_BODY")
local content_type = os.getenv("BENCH_CONTENT_TYPE")

if method and method ~= "" then
    wrk.method = method
end
if body and body ~= "" then
    wrk.body = body
end
if content_type and content_type ~= "" then
    wrk.headers["Content-Type"] = content_type
end

function done(summary, latency, requests)
    local out = assert(os.getenv("BENCH_REPORT"), "BENCH_REPORT must name the output file")
    local f = assert(io.open(out, "w"))
    local e = summary.errors
    local lines = {
        { "requests", summary.requests },
        { "duration_us", summary.duration },
        { "bytes", summary.bytes },
        { "err_connect", e.connect },
        { "err_read", e.read },
        { "err_write", e.write },
        { "err_status", e.status },
        { "err_timeout", e.timeout },
        { "lat_mean_us", latency.mean },
        { "lat_max_us", latency.max },
        { "p50_us", latency:percentile(50) },
        { "p90_us", latency:percentile(90) },
        { "p99_us", latency:percentile(99) },
        { "p999_us", latency:percentile(99.9) },
    }
    for _, kv in ipairs(lines) do
        f:write(string.format("%s %s\n", kv[1], tostring(kv[2])))
    end
    f:close()
end
