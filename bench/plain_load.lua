-- wrk script for bench/load.py's baselines (GET /healthz, a static answer from nginx):
-- the same one-connection-a-thread shape as scan_load.lua, the same BENCH summary line.

dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "wrk_bench.lua")  -- setup, done

function init(args)
   created, refused = 0, 0
   pace = tonumber(os.getenv("BENCH_PACE_MS") or "0")
end

function delay()
   return pace
end

function response(status, headers, body)
   if status == 200 then created = created + 1 else refused = refused + 1 end
end
