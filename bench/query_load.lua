-- wrk script for bench/pressure.py: residents asking for their result.
--
-- BENCH_DIR/queries.txt holds one JSON body a line (an ID number and a name); thread n
-- starts at line n and steps by the number of threads, so the threads ask for
-- different people, as phones across a city do. Answers other than 200 are counted.
-- With BENCH_PACE_MS set, a phone waits that long between queries (a paced load).

dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "wrk_bench.lua")  -- setup, done

function init(args)
   local f = assert(io.open(os.getenv("BENCH_DIR") .. "/queries.txt", "r"))
   bodies = {}
   for line in f:lines() do
      bodies[#bodies + 1] = line
   end
   f:close()
   at = id
   step = tonumber(os.getenv("BENCH_THREADS") or "1")
   headers = { ["Content-Type"] = "application/json" }
   pace = tonumber(os.getenv("BENCH_PACE_MS") or "0")
   created, refused = 0, 0
end

function delay()
   return pace
end

function request()
   at = (at + step) % #bodies
   return wrk.format("POST", "/api/v1/results/query", headers, bodies[at + 1])
end

function response(status, headers, body)
   if status == 200 then
      created = created + 1
   else
      refused = refused + 1
   end
end
