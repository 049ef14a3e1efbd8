"""Issue 6's remaining load figures, each against a baseline taken in the same run:

    .venv/bin/python bench/pressure.py [--concurrency 32] [--soak-seconds 600] [--profile]

1. Resident queries/s (POST /results/query, wrk, bench/query_load.lua) at
   ``--concurrency`` while a 210,000-tube lab-day file is being ingested, with p50/p99,
   against GET /healthz at the same concurrency, and against the same queries with
   nothing else running.
2. Single scans paced at 80% of the maximum rate measured just before (open loop):
   p50/p99 and errors.
3. A soak at half the maximum registration rate for ``--soak-seconds``: errors, and
   the server's memory (RSS) sampled every 10 s; afterwards what the database holds
   against what was acknowledged.
4. (``--uploads``, issue 16) single scans' p99 from ``--scan-workers`` closed-loop
   workers while ``--uploads`` lab files of ``--upload-mb`` MB are sent at once (each
   sent again after ``Retry-After`` when told 503 server-busy, as a client should),
   against the same workers' p99 with nothing else running.

Each part starts `screening serve` (one process) on its own fresh database.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import psutil
import scan_profile as profile  # beside this script
from closed_loop import drive, percentile
from closed_loop import seed as seed_round
from ingest import plate_layout, seed, write_lis_csv
from load import pace_at, wrk
from service import asyncpg_dsn, running_service

QUERY_SECONDS = 6  # twice (flat out, paced) within a 210,000-tube ingestion (14-18 s here)


async def queries_during_ingestion(
    svc: Any, concurrency: int, tubes: int, spy: bool = False
) -> dict[str, Any]:
    """With wrk at ``concurrency`` connections: /healthz for 10 s (baseline), resident
    queries for 10 s alone, then for ``QUERY_SECONDS`` while a lab-day file ingests;
    each phase with the CPU it cost the service, PostgreSQL and wrk. With ``spy``,
    py-spy records the service during the paced phase (whose figure it then weighs on,
    a little: py-spy samples without stopping the process)."""
    folder = Path(tempfile.mkdtemp(prefix="screening-pressure-"))
    labday = folder / "labday.csv"
    write_lis_csv(labday, plate_layout(tubes))
    people = 5_000
    out: dict[str, Any] = {}
    await seed(asyncpg_dsn(svc.db_url), tubes)
    async with httpx.AsyncClient(base_url=svc.base + "/api/v1", timeout=60) as client:
        census = "id_type,id_number,name,phone,district\n" + "".join(
            f"other,Q{i:08d},居民{i},,B1\n" for i in range(people)
        )
        r = await client.post(
            "/residents/import", headers=svc.admin, files={"file": ("c.csv", census)}
        )
        r.raise_for_status()

    # wrk, not a Python client (which reached 195-482 /healthz a second where wrk reaches
    # over a thousand): one connection per phone, each asking for other people
    (folder / "queries.txt").write_text(
        "".join(
            json.dumps({"id_number": f"Q{i:08d}", "name": f"居民{i}"}, ensure_ascii=False) + "\n"
            for i in range(people)
        )
    )
    env = {"BENCH_DIR": str(folder), "BENCH_THREADS": str(concurrency)}
    split = profile.CpuSplit()

    async def measured(*args: Any) -> dict[str, Any]:
        split.start(svc.pid)
        figure: dict[str, Any] = await asyncio.to_thread(wrk, *args)
        figure["cpu"] = split.stop()
        return figure

    out["healthz"] = await measured(svc.base + "/healthz", concurrency, 10, "plain_load.lua", {})
    out["query_alone"] = await measured(svc.base, concurrency, 10, "query_load.lua", env)
    uploading = asyncio.create_task(_upload(svc, labday))
    await asyncio.sleep(0.5)  # the file is on its way in
    started = time.perf_counter()
    out["query"] = await measured(svc.base, concurrency, QUERY_SECONDS, "query_load.lua", env)
    # then paced at about 80% of that rate, as bench/load.py paces its clerks: the p99
    # below saturation
    pace_ms = pace_at(concurrency, out["query"])
    spying = profile.start_py_spy(svc.pid, QUERY_SECONDS, folder / "py-spy.txt") if spy else None
    out["query_paced"] = await measured(
        svc.base,
        concurrency,
        QUERY_SECONDS,
        "query_load.lua",
        {**env, "BENCH_PACE_MS": str(pace_ms)},
    )
    out["query_paced"]["pace_ms"] = pace_ms
    if spying is not None:
        await asyncio.to_thread(spying.wait)
        out["py_spy"] = profile.summarize_py_spy(folder / "py-spy.txt", QUERY_SECONDS)
    # the figure counts only if the ingestion lasted the whole wrk run
    out["upload_still_running"] = not uploading.done()
    out["upload_status"] = (await uploading).status_code
    out["upload_seconds"] = time.perf_counter() - started + 0.5
    out["ratio"] = out["query"]["rate"] / out["healthz"]["rate"]
    return out


async def _upload(svc: Any, path: Path) -> httpx.Response:
    async with httpx.AsyncClient(timeout=600) as client:
        data = await asyncio.to_thread(path.read_bytes)
        return await client.post(
            f"{svc.base}/api/v1/labs/BL1/results",
            headers=svc.admin,
            files={"file": ("labday.csv", data)},
            data={"format": "lis-csv"},
        )


async def paced(rate: float, seconds: float, call: Any, sample: Any = None) -> dict[str, Any]:
    """Open loop: start ``call(n)`` every 1/rate s whatever the answers do."""
    latencies: list[float] = []
    errors = 0
    kinds: dict[str, int] = {}
    tasks: set[asyncio.Task[None]] = set()

    async def one(n: int) -> None:
        nonlocal errors
        t0 = time.perf_counter()
        try:
            outcome = await call(n)
        except httpx.HTTPError as exc:
            outcome = type(exc).__name__
        latencies.append(time.perf_counter() - t0)
        if outcome is not True:
            errors += 1
            kinds[str(outcome)] = kinds.get(str(outcome), 0) + 1

    start = time.perf_counter()
    n = 0
    next_sample = start
    while (now := time.perf_counter()) - start < seconds:
        due = start + n / rate
        if now < due:
            await asyncio.sleep(due - now)
        task = asyncio.create_task(one(n))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        n += 1
        if sample is not None and now >= next_sample:
            sample()
            next_sample = now + 10
    await asyncio.gather(*tasks)
    return {
        "requests": n,
        "rate": n / seconds,
        "p50_ms": percentile(latencies, 0.5) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "errors": errors,
        "error_kinds": kinds,
    }


async def scans_and_soak(svc: Any, concurrency: int, soak_seconds: float) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if True:
        rss: list[int] = []
        process = psutil.Process(svc.pid)
        async with httpx.AsyncClient(
            base_url=svc.base + "/api/v1",
            timeout=30,
            limits=httpx.Limits(max_connections=concurrency * 4),
        ) as client:
            world = await seed_round(client, 120_000, 12_500, svc.admin)
            rid, codes, barcodes = world["round"], world["codes"], world["barcodes"]
            sampler = {"Authorization": f"Bearer {world['sampler']}"}
            used = 0
            acknowledged = 0
            lock = threading.Lock()

            async def scan(_: int) -> bool | str:
                nonlocal used, acknowledged
                with lock:
                    i = used
                    used += 1
                r = await client.post(
                    f"/rounds/{rid}/samples",
                    headers=sampler,
                    json={"tube": barcodes[i // 10], "resident_code": codes[i]},
                )
                acknowledged += r.status_code == 201
                return True if r.status_code == 201 else f"{r.status_code} {r.text[:80]}"

            async def scan_ok(w: int, n: int) -> bool:
                return await scan(n) is True

            out["max"] = await drive(concurrency, 10, scan_ok)
            top = out["max"]["rate"]
            out["at_80"] = await paced(0.8 * top, 15, scan)
            out["at_80"]["target"] = 0.8 * top
            budget = len(codes) - used - 100
            soak_rate = min(0.5 * top, budget / soak_seconds)
            out["soak"] = await paced(
                soak_rate, soak_seconds, scan, sample=lambda: rss.append(process.memory_info().rss)
            )
            out["soak"]["target"] = soak_rate
            out["soak"]["rss_mb"] = [round(r / 1e6) for r in rss]
        conn = await asyncpg.connect(asyncpg_dsn(svc.db_url))
        try:
            out["held"] = await conn.fetchval("SELECT count(*) FROM samples")
            out["doubled"] = await conn.fetchval(
                "SELECT count(*) FROM (SELECT tube_serial, resident_id FROM samples"
                " GROUP BY 1, 2 HAVING count(*) > 1) d"
            )
        finally:
            await conn.close()
        out["acknowledged"] = acknowledged
    return out


def lab_file(megabytes: int) -> bytes:
    """A lis-csv of ``megabytes`` MB: 2 controls and rows for tubes never issued, so
    every row is staged, checked and rejected (an upload's full path without results)."""
    lines = ["plate,well,sample,role,ORF1ab,N,IC\n"]
    size = len(lines[0])
    n = 0
    while size < megabytes * 1_000_000:
        line = f"U{n // 94:06d},A3,9{n:013d},sample,,,26.10\n"
        lines.append(line)
        size += len(line)
        n += 1
    return "".join(lines).encode()


async def scans_under_uploads(
    svc: Any, uploads: int, megabytes: int, workers: int, seconds: float
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    async with httpx.AsyncClient(
        base_url=svc.base + "/api/v1", timeout=60, limits=httpx.Limits(max_connections=64)
    ) as client:
        world = await seed_round(client, 60_000, 6_000, svc.admin)
        r = await client.post(
            "/labs",
            headers=svc.admin,
            json={"code": "UL1", "name": "上传实验室", "daily_capacity_tubes": 100_000},
        )
        r.raise_for_status()
        rid, codes, barcodes = world["round"], world["codes"], world["barcodes"]
        sampler = {"Authorization": f"Bearer {world['sampler']}"}
        used = 0
        refused: dict[str, int] = {}

        async def scan(w: int, n: int) -> bool:
            nonlocal used
            i = used
            used += 1
            try:
                r = await client.post(
                    f"/rounds/{rid}/samples",
                    headers=sampler,
                    json={"tube": barcodes[i // 10], "resident_code": codes[i]},
                )
            except httpx.HTTPError as exc:
                refused[type(exc).__name__] = refused.get(type(exc).__name__, 0) + 1
                return False
            if r.status_code != 201:
                kind = f"{r.status_code} {r.json().get('type')}"
                refused[kind] = refused.get(kind, 0) + 1
            return r.status_code == 201

        out["alone"] = await drive(workers, seconds, scan)
        body = await asyncio.to_thread(lab_file, megabytes)
        outcomes: dict[str, int] = {}

        async def upload(k: int) -> None:
            data = body + f"Z{k:04d},A3,9{k:013d},sample,,,26.10\n".encode()
            async with httpx.AsyncClient(timeout=1800) as uploader:
                while True:
                    r = await uploader.post(
                        f"{svc.base}/api/v1/labs/UL1/results",
                        headers=svc.admin,
                        files={"file": (f"day-{k}.csv", data)},
                        data={"format": "lis-csv"},
                    )
                    outcomes[str(r.status_code)] = outcomes.get(str(r.status_code), 0) + 1
                    if r.status_code != 503:
                        return
                    await asyncio.sleep(float(r.headers.get("retry-after", "5")))

        started = time.perf_counter()
        sending = asyncio.gather(*(upload(k) for k in range(uploads)))
        await asyncio.sleep(1.0)  # the files are on their way in
        out["under_uploads"] = await drive(workers, 3600, scan, until=sending.done)
        await sending
        out["uploads_seconds"] = time.perf_counter() - started
        out["upload_answers"] = outcomes
        out["scan_refusals"] = refused
    out["ratio"] = out["under_uploads"]["p99_ms"] / out["alone"]["p99_ms"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--tubes", type=int, default=210_000)
    parser.add_argument("--soak-seconds", type=float, default=600)
    parser.add_argument("--skip-queries", action="store_true")
    parser.add_argument("--only-queries", action="store_true")
    parser.add_argument(
        "--profile", action="store_true", help="py-spy on the service during the paced queries"
    )
    parser.add_argument("--uploads", type=int, default=0, help="run part 4 only, with N files")
    parser.add_argument("--upload-mb", type=int, default=15)
    parser.add_argument("--scan-workers", type=int, default=8)
    parser.add_argument("--scan-seconds", type=float, default=15)
    args = parser.parse_args()
    if args.uploads:
        with running_service() as svc:
            u = asyncio.run(
                scans_under_uploads(
                    svc, args.uploads, args.upload_mb, args.scan_workers, args.scan_seconds
                )
            )
        a, b = u["alone"], u["under_uploads"]
        print(
            f"scans alone ({args.scan_workers} workers, {a['seconds']:.0f} s): {a['rate']:.0f}/s"
            f"  p50 {a['p50_ms']:.1f} ms  p99 {a['p99_ms']:.1f} ms  errors {a['errors']}"
        )
        print(
            f"scans while {args.uploads} x {args.upload_mb} MB uploads run"
            f" ({b['seconds']:.0f} s): {b['rate']:.0f}/s  p50 {b['p50_ms']:.1f} ms"
            f"  p99 {b['p99_ms']:.1f} ms  errors {b['errors']}"
        )
        print(
            f"  p99 ratio under uploads / alone: {u['ratio']:.2f};"
            f" upload answers {u['upload_answers']} in {u['uploads_seconds']:.0f} s;"
            f" scans not taken: {u['scan_refusals'] or 'none'}"
        )
        return
    if not args.skip_queries:
        with running_service() as svc:
            q = asyncio.run(
                queries_during_ingestion(svc, args.concurrency, args.tubes, args.profile)
            )
        h, a, f, z = q["healthz"], q["query_alone"], q["query"], q["query_paced"]
        for name, x in (
            ("healthz (baseline)", h),
            ("queries, nothing else running", a),
            (f"queries during a {args.tubes:,}-tube upload", f),
            (f"  the same, paced {z['pace_ms']} ms", z),
        ):
            print(
                f"{name:44} {x['rate']:7.0f}/s  p50 {x['p50_ms']:.1f} ms"
                f"  p99 {x['p99_ms']:.1f} ms  not 200: {x['refused']:.0f}"
                f"  socket errors {x['socket_errors']:.0f}"
            )
            profile.show_cpu(x["cpu"], x["requests"])
        print(
            f"  ratio query (during the upload) / healthz: {q['ratio']:.2f};"
            f" paced at {z['rate'] / f['rate']:.2f} of the flat-out rate;"
            f" upload {q['upload_status']} after {q['upload_seconds']:.1f} s,"
            f" still running when wrk stopped: {q['upload_still_running']}"
        )
        if "py_spy" in q:
            print("the service during the paced queries (the ingestion running beside them):")
            profile.show(q["py_spy"], [], Counter())
    if args.only_queries:
        return
    with running_service() as svc:
        s = asyncio.run(scans_and_soak(svc, args.concurrency, args.soak_seconds))
    m, a, k = s["max"], s["at_80"], s["soak"]
    print(f"scans, max ({args.concurrency} workers): {m['rate']:.0f}/s p99 {m['p99_ms']:.1f} ms")
    print(
        f"scans paced at 80% ({a['target']:.0f}/s): p50 {a['p50_ms']:.1f} ms"
        f"  p99 {a['p99_ms']:.1f} ms  errors {a['errors']} {a['error_kinds'] or ''}"
    )
    print(
        f"soak {args.soak_seconds:.0f} s at {k['target']:.0f}/s: {k['requests']} scans,"
        f" p99 {k['p99_ms']:.1f} ms, errors {k['errors']} {k['error_kinds'] or ''};"
        " server RSS MB every 10 s:"
        f" {k['rss_mb']}"
    )
    print(f"acknowledged {s['acknowledged']}, held {s['held']}, doubled {s['doubled']}")


if __name__ == "__main__":
    main()
