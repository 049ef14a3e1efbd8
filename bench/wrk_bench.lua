-- What bench/*_load.lua share (loaded by each with dofile): one thread numbered per
-- connection, and the BENCH summary line bench/load.py reads. Each thread counts its
-- answers in the globals `created` (the answer the run is about), `refused` (any
-- other status) and `idle` (a clerk with no residents left asking /healthz).

threads = {}
local next_thread = 0

function setup(thread)
   thread:set("id", next_thread)
   next_thread = next_thread + 1
   table.insert(threads, thread)
end

function done(summary, latency, requests)
   local c, r, i = 0, 0, 0
   for _, thread in ipairs(threads) do
      c = c + thread:get("created")
      r = r + thread:get("refused")
      i = i + (thread:get("idle") or 0)
   end
   io.write(string.format(
      'BENCH {"requests": %d, "seconds": %.3f, "created": %d, "refused": %d, "idle": %d,'
         .. ' "socket_errors": %d, "p50_ms": %.2f, "p90_ms": %.2f, "p99_ms": %.2f}\n',
      summary.requests, summary.duration / 1e6, c, r, i,
      summary.errors.connect + summary.errors.read + summary.errors.write
         + summary.errors.timeout,
      latency:percentile(50) / 1000, latency:percentile(90) / 1000,
      latency:percentile(99) / 1000))
end
