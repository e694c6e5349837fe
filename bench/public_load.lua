-- wrk script for bench/public_load.py: each wrk connection is one reader of the public page in poll
-- mode (static/mizumori/public.js): a conditional GET of the snapshot, then a wait of one publish
-- tick after the answer, the first one at a random moment within the first tick.
--
--   MZ_INTERVAL_MS   the tick (the document's live.interval), in ms
--   MZ_READERS       connections per thread (wrk -c / -t), to give each its random start
--
-- wrk keeps one Lua state per thread, not per connection: the readers of a thread send the newest
-- ETag any of them has seen, as a reader holding the current document would.

local interval = tonumber(os.getenv("MZ_INTERVAL_MS") or "5000")
local per_thread = tonumber(os.getenv("MZ_READERS") or "1")
local threads = {}

function setup(thread)
    table.insert(threads, thread)
end

function init(args)
    math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16) % 100000)
    etag = nil
    started = 0
    ok = 0
    not_modified = 0
    other = 0
end

function delay()
    if started < per_thread then
        started = started + 1
        return math.random(0, interval)
    end
    return interval
end

function request()
    local headers = { ["Accept-Encoding"] = "gzip" }
    if etag then
        headers["If-None-Match"] = etag
    end
    return wrk.format("GET", nil, headers)
end

function response(status, headers, body)
    if status == 200 then
        ok = ok + 1
        etag = headers["ETag"] or headers["etag"] or etag
    elseif status == 304 then
        not_modified = not_modified + 1
    else
        other = other + 1
    end
end

function done(summary, latency, requests)
    local counts = { ok = 0, not_modified = 0, other = 0 }
    for _, thread in ipairs(threads) do
        counts.ok = counts.ok + thread:get("ok")
        counts.not_modified = counts.not_modified + thread:get("not_modified")
        counts.other = counts.other + thread:get("other")
    end
    local e = summary.errors
    io.write(string.format(
        'MZ-RESULT {"requests": %d, "duration_us": %d, "ok": %d, "not_modified": %d, "other_status": %d, '
            .. '"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d, '
            .. '"p50_us": %d, "p95_us": %d, "p99_us": %d, "max_us": %d}\n',
        summary.requests, summary.duration, counts.ok, counts.not_modified, counts.other,
        e.connect, e.read, e.write, e.status, e.timeout,
        latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.max))
end
