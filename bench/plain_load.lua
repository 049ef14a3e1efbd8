-- wrk script for bench/load.py's baselines (GET /healthz, a static answer from nginx):
-- the same one-connection-a-thread shape as scan_load.lua, the same BENCH summary line.

local threads = {}

function setup(thread)
   table.insert(threads, thread)
end

function init(args)
   ok, refused = 0, 0
   pace = tonumber(os.getenv("BENCH_PACE_MS") or "0")
end

function delay()
   return pace
end

function response(status, headers, body)
   if status == 200 then ok = ok + 1 else refused = refused + 1 end
end

function done(summary, latency, requests)
   local c, r = 0, 0
   for _, thread in ipairs(threads) do
      c = c + thread:get("ok")
      r = r + thread:get("refused")
   end
   io.write(string.format(
      'BENCH {"requests": %d, "seconds": %.3f, "created": %d, "refused": %d, "idle": 0,'
         .. ' "socket_errors": %d, "p50_ms": %.2f, "p90_ms": %.2f, "p99_ms": %.2f}\n',
      summary.requests, summary.duration / 1e6, c, r,
      summary.errors.connect + summary.errors.read + summary.errors.write
         + summary.errors.timeout,
      latency:percentile(50) / 1000, latency:percentile(90) / 1000,
      latency:percentile(99) / 1000))
end
