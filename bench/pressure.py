"""Issue 6's remaining load figures, each against a baseline taken in the same run:

    .venv/bin/python bench/pressure.py [--concurrency 32] [--soak-seconds 600]

1. Resident queries/s (POST /results/query) at ``--concurrency`` while a 210,000-tube
   lab-day file is being ingested, with p50/p99, against GET /healthz at the same
   concurrency, also during an ingestion of the same file size.
2. Single scans paced at 80% of the maximum rate measured just before (open loop):
   p50/p99 and errors.
3. A soak at half the maximum registration rate for ``--soak-seconds``: errors, and
   the server's memory (RSS) sampled every 10 s; afterwards what the database holds
   against what was acknowledged.

Each part starts `screening serve` (one process) on its own fresh database.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import psutil
from ingest import plate_layout, seed, write_lis_csv
from load import drive, percentile
from load import seed as seed_round
from service import asyncpg_dsn, running_service


async def queries_during_ingestion(svc: Any, concurrency: int, tubes: int) -> dict[str, Any]:
    """/healthz at ``concurrency`` for 10 s (baseline), then resident queries at the
    same concurrency for as long as a lab-day upload takes."""
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

        async def health(w: int, n: int) -> bool:
            return (await client.get(svc.base + "/healthz")).status_code == 200

        async def query(w: int, n: int) -> bool:
            i = (w * 7919 + n) % people
            body = {"id_number": f"Q{i:08d}", "name": f"居民{i}"}
            return (await client.post("/results/query", json=body)).status_code == 200

        out["healthz"] = await drive(concurrency, 10, health)
        uploading = asyncio.create_task(_upload(svc, labday))
        await asyncio.sleep(0.5)  # the file is on its way in
        out["query"] = await drive(concurrency, 3600, query, until=uploading.done)
        out["upload_status"] = (await uploading).status_code
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--tubes", type=int, default=210_000)
    parser.add_argument("--soak-seconds", type=float, default=600)
    parser.add_argument("--skip-queries", action="store_true")
    parser.add_argument("--only-queries", action="store_true")
    args = parser.parse_args()
    if not args.skip_queries:
        with running_service() as svc:
            q = asyncio.run(queries_during_ingestion(svc, args.concurrency, args.tubes))
        h, f = q["healthz"], q["query"]
        print(
            f"healthz (baseline): {h['rate']:7.0f} req/s  p50 {h['p50_ms']:.1f} ms"
            f"  p99 {h['p99_ms']:.1f} ms"
        )
        print(
            f"queries during a {args.tubes:,}-tube upload: {f['rate']:7.0f} req/s"
            f"  p50 {f['p50_ms']:.1f} ms  p99 {f['p99_ms']:.1f} ms  errors {f['errors']}"
            f"  ({f['seconds']:.1f} s, upload {q['upload_status']})"
        )
        print(f"  ratio query / healthz: {q['ratio']:.2f}")
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
