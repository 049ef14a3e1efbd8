"""GET /rounds/{id}/progress on a seeded 25-million-sample round, against /healthz.

    .venv/bin/python bench/progress.py [--samples 25000000] [--points 20000] [--requests 200]

Seeds through COPY (not the API): 16 districts, ``--points`` sampling points, 15 labs,
one 10-in-1 round, ``--samples / 10`` residents each swabbed into ten tubes (so the
round holds ``--samples`` registrations in ``--samples / 10`` tubes: sealed,
in transit, received and resulted at 0.1% positive, across all points and labs).
Seeding runs with triggers off (session_replication_role = replica) and then fills
the counters with the backfill SQL of migrations 0004 and 0006, exactly what the
triggers would have written. Then ``--requests`` sequential GET /progress and GET /healthz calls,
interleaved, in the same run: p50/p99 latency of each and their ratio (the default
first page of 100 sampling points; districts, labs and totals are never paged).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
from service import asyncpg_dsn, running_service

from pooling.barcodes import format_barcode

VERSIONS = Path(__file__).parents[1] / "screening/migrations/versions"
MIGRATIONS = ("0004_progress_counters.py", "0006_truthful_progress.py")
BATCH = 500_000


def backfill_sql() -> list[str]:
    statements = []
    for name in MIGRATIONS:
        spec = importlib.util.spec_from_file_location(name[:4], VERSIONS / name)
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        statements += [s for s in module.BACKFILL.split("\n--\n") if s.strip()]
    return statements


async def copy_in(conn: asyncpg.Connection, table: str, columns: list[str], rows, total: int):
    batch, done, t0 = [], 0, time.perf_counter()
    for row in rows:
        batch.append(row)
        if len(batch) == BATCH:
            await conn.copy_records_to_table(table, columns=columns, records=batch)
            done += len(batch)
            batch.clear()
            print(f"  {table}: {done:,}/{total:,} ({time.perf_counter() - t0:.0f} s)", flush=True)
    if batch:
        await conn.copy_records_to_table(table, columns=columns, records=batch)


async def seed(dsn: str, samples: int, points: int) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("SET session_replication_role = replica")
        await conn.execute(
            "INSERT INTO districts (code, name, population)"
            " SELECT 'D' || g, '区' || g, 1600000 FROM generate_series(1, 16) g;"
            "INSERT INTO sampling_points (code, name, address, district_id, stations,"
            "                             people_per_hour_per_station)"
            f" SELECT 'SP' || g, '采样点' || g, '路' || g, 1 + g % 16, 3, 60"
            f" FROM generate_series(1, {points}) g;"
            "INSERT INTO labs (code, name, daily_capacity_tubes, kit)"
            " SELECT 'L' || g, '实验室' || g, 200000, '{}' FROM generate_series(1, 15) g;"
            "INSERT INTO rounds (name, pool_size, starts_at, deadline)"
            " VALUES ('bench', 10, now() - interval '1 day', now());"
            "INSERT INTO round_districts (round_id, district_id, pool_size)"
            " SELECT 1, g, 10 FROM generate_series(1, 16) g;"
        )
        residents = samples // 10
        tubes = samples // 10
        now = datetime.now(UTC)
        await copy_in(
            conn,
            "residents",
            ["id", "code", "id_type", "id_hash", "id_enc", "name_enc", "phone_enc", "district_id"],
            (
                (
                    i,
                    f"R{i:015d}",
                    "prc_id",
                    i.to_bytes(32, "big"),
                    b"x",
                    b"x",
                    None,
                    1 + i % 16,
                )
                for i in range(1, residents + 1)
            ),
            residents,
        )
        states = ("sealed", "in_transit", "received", "resulted", "resulted", "resulted")

        def tube(serial: int) -> tuple[object, ...]:
            state = states[serial % len(states)]
            at_lab = state in ("received", "resulted")
            call = None
            if state == "resulted":
                call = "positive" if serial % 1000 == 0 else "negative"
            return (
                serial,
                format_barcode(serial),
                1,
                1 + serial % points,
                "pool",
                10,
                10,
                state,
                now - timedelta(hours=8),
                1 + serial % 15 if at_lab else None,
                now - timedelta(hours=4) if at_lab else None,
                call,
                1 if call else None,
                now - timedelta(hours=8) + timedelta(minutes=serial % 600) if call else None,
            )

        await copy_in(
            conn,
            "tubes",
            [
                "serial",
                "barcode",
                "round_id",
                "sampling_point_id",
                "kind",
                "capacity",
                "count",
                "state",
                "sealed_at",
                "lab_id",
                "received_at",
                "result_call",
                "result_version",
                "resulted_at",
            ],
            (tube(s) for s in range(1, tubes + 1)),
            tubes,
        )
        await copy_in(
            conn,
            "samples",
            ["id", "round_id", "tube_serial", "resident_id", "kind", "position", "sampled_at"],
            (
                (i + 1, 1, 1 + i // 10, 1 + (i * 7919) % residents, "pool", 1 + i % 10, now)
                for i in range(samples)
            ),
            samples,
        )
        t0 = time.perf_counter()
        for statement in backfill_sql():
            await conn.execute(statement)
        print(f"  counters backfilled in {time.perf_counter() - t0:.0f} s")
        await conn.execute("ANALYZE")
        return int(await conn.fetchval("SELECT count(*) FROM progress_counts"))
    finally:
        await conn.close()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=25_000_000)
    parser.add_argument("--points", type=int, default=20_000)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    with running_service() as svc:
        t0 = time.perf_counter()
        rows = asyncio.run(seed(asyncpg_dsn(svc.db_url), args.samples, args.points))
        print(
            f"seeded {args.samples:,} samples in {time.perf_counter() - t0:.0f} s;"
            f" {rows:,} counter rows"
        )
        progress, health = [], []
        with httpx.Client(base_url=svc.base, timeout=60) as client:
            body = client.get("/api/v1/rounds/1/progress", headers=svc.admin).json()
            for _ in range(args.requests):
                t = time.perf_counter()
                assert client.get("/api/v1/rounds/1/progress", headers=svc.admin).status_code == 200
                progress.append((time.perf_counter() - t) * 1000)
                t = time.perf_counter()
                assert client.get("/healthz").status_code == 200
                health.append((time.perf_counter() - t) * 1000)
    print(
        f"progress says: people {body['registered']:,}, samples {body['samples']:,},"
        f" tubes {body['tubes']},"
        f" {len(body['sampling_points'])} points, {len(body['labs'])} labs,"
        f" turnaround {body['turnaround_hours']}"
    )
    print(f"GET /progress: p50 {pct(progress, 0.5):.1f} ms, p99 {pct(progress, 0.99):.1f} ms")
    print(f"GET /healthz:  p50 {pct(health, 0.5):.1f} ms, p99 {pct(health, 0.99):.1f} ms")
    print(f"  ratio of p50s (progress / healthz): {pct(progress, 0.5) / pct(health, 0.5):.1f}")


if __name__ == "__main__":
    main()
