-- wrk script for bench/load.py: one wrk thread = one connection = one registration clerk.
--
-- Each clerk reads its own file (clerk-<n>.txt in BENCH_DIR): the first line is
-- "<round id> <sampler token>", every further line "<tube barcode> <resident code>",
-- ten residents per tube, tube after tube, as a clerk at a sampling point fills them.
-- Clerks are spread over the sampling points by bench/load.py. With BENCH_PACE_MS set,
-- a clerk waits that long between scans (a paced, below-saturation load); otherwise it
-- scans as fast as the service answers. When a clerk has no residents left it asks
-- /healthz and counts those answers apart, so they never pass for scans. Each scan
-- carries its own event_id, as the station page sends it (the service claims it).

dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "wrk_bench.lua")  -- setup, done

function init(args)
   local dir = os.getenv("BENCH_DIR")
   local f = assert(io.open(dir .. "/clerk-" .. id .. ".txt", "r"))
   local round_id, token = f:read("*l"):match("(%S+) (%S+)")
   run = dir:match("([^/]+)$")
   rows = {}
   for line in f:lines() do
      local tube, code = line:match("(%S+) (%S+)")
      rows[#rows + 1] = '{"tube":"' .. tube .. '","resident_code":"' .. code
         .. '","event_id":"' .. run .. "-" .. id .. "-" .. (#rows + 1) .. '"}'
   end
   f:close()
   path = "/api/v1/rounds/" .. round_id .. "/samples"
   headers = {
      ["Authorization"] = "Bearer " .. token,
      ["Content-Type"] = "application/json",
   }
   pace = tonumber(os.getenv("BENCH_PACE_MS") or "0")
   sent, created, refused, idle = 0, 0, 0, 0
end

function delay()
   return pace
end

function request()
   sent = sent + 1
   if sent > #rows then
      return wrk.format("GET", "/healthz")
   end
   return wrk.format("POST", path, headers, rows[sent])
end

function response(status, headers, body)
   if status == 201 then
      created = created + 1
   elseif status == 200 then
      idle = idle + 1
   else
      refused = refused + 1
   end
end
