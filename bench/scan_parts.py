"""Where PostgreSQL's time in one scan goes, part by part, same run.

    flock /tmp/bench.lock .venv/bin/python bench/scan_parts.py [--scans 1000] [--rounds 5]

On a fresh database (SCREENING_DATABASE_URL's server, else an embedded one) migrated to
head, one asyncpg connection calls the service's own write, ``scan_take_slot``
(``screening.sampling.queries.TAKE_SLOT``), as the online scan does: outside a
transaction (each call commits, synchronously), each scan a new person, a point's clerk
filling one 10-in-1 tube after another (one call in ten opens the tube), 40 points in
turn, every scan with its own ``event_id``. Yesterday's round (``--history`` scans)
is in the tables first, analysed: on empty tables the plans are not a live database's.

The same block of scans is run under set-ups that each take one part away, interleaved
``--rounds`` times so the machine's drift falls on all alike; for each, the backend's
own CPU a scan (``/proc/<pid>/schedstat``: nanoseconds on a core, the server must run
on this machine) and the wall time a call, with the difference to the deployed scan.
A part's cost is what taking it away saves. ``SELECT 1`` a call gives the fixed cost of
a statement and its commit round trip. ``session_replication_role = replica`` switches
off every trigger, the foreign keys' too (they are triggers inside PostgreSQL).
"0012's three tube-update triggers" puts back, for its block, the three triggers that
migration 0013 merged (their functions remain): the before of that change, same run.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from service import asyncpg_dsn, database_server  # beside this script
from sqlalchemy.ext.asyncio import create_async_engine

from screening.db import drop_database, ensure_database, migrate_engine, with_database
from screening.sampling import queries

POINTS = 40
POOL = 10
HISTORY_SERIALS = 10**12  # yesterday's tubes, far from today's
SAMPLE_MARKS = (("samples", "feed_mark_samples"),)
SAMPLE_COUNTER = (("samples", "progress_samples_inserted"),)
NEW_TUBE_COUNTER = (("tubes", "progress_tubes_inserted"),)
TUBE_UPDATE = (("tubes", "tubes_updated"),)  # counters and feed marks (migration 0013)
FIRST_SAMPLE = (("samples", "progress_first_sample"),)
EVERY_TRIGGER = SAMPLE_MARKS + SAMPLE_COUNTER + NEW_TUBE_COUNTER + TUBE_UPDATE + FIRST_SAMPLE
# before migration 0013, three triggers on a tube's update (their functions remain)
TRIGGERS_0012 = ("feed_mark_tubes", "progress_tubes_updated", "progress_tubes_updated_split")


@dataclass(frozen=True)
class SetUp:
    name: str
    triggers_off: tuple[tuple[str, str], ...] = ()
    event: bool = True
    replica: bool = False  # no triggers at all, foreign keys included
    hollow: tuple[str, ...] = ()  # trigger functions that fire but do nothing
    before_0013: bool = False  # the tube's update under 0012's three triggers
    statement: str | None = None  # instead of the scan: this, once a call


SET_UPS = (
    SetUp("deployed"),
    SetUp("0012's three tube-update triggers", before_0013=True),
    SetUp("- event claim", event=False),
    SetUp("- tube update's trigger", triggers_off=TUBE_UPDATE),
    SetUp("  that trigger hollow (fired, does nothing)", hollow=("tubes_updated",)),
    SetUp("- new tube's counter", triggers_off=NEW_TUBE_COUNTER),
    SetUp("- samples' counter", triggers_off=SAMPLE_COUNTER),
    SetUp("- samples' feed marks", triggers_off=SAMPLE_MARKS),
    SetUp("- first-sample row trigger", triggers_off=FIRST_SAMPLE),
    SetUp("- all five", triggers_off=EVERY_TRIGGER),
    SetUp("- every trigger and foreign key", replica=True),
    SetUp("- all that and the event claim", replica=True, event=False),
    SetUp("SELECT 1", statement="SELECT 1"),
)


async def seed(conn: asyncpg.Connection, people: int, history: int) -> None:
    """A district, its points, residents, today's round, and yesterday's round with
    ``history`` scans (sealed 10-in-1 tubes): tables of a live database, analysed, so
    the plans are the ones a service meets, not those of empty tables (measured: a
    scan on fresh tables costs 2-3 times as much, every trigger's look-up a seq scan)."""
    await conn.execute(
        f"""
        INSERT INTO districts (id, code, name, population) VALUES (1, 'D1', 'D1', 10000000);
        INSERT INTO sampling_points (id, code, name, address, district_id, stations,
                                     people_per_hour_per_station)
        SELECT p, 'P' || p, 'P' || p, '-', 1, 50, 60 FROM generate_series(1, {POINTS}) p;
        INSERT INTO rounds (id, name, pool_size, starts_at, deadline)
        VALUES (1, 'today', 10, now(), now() + interval '1 day'),
               (2, 'yesterday', 10, now() - interval '1 day', now());
        INSERT INTO round_districts VALUES (1, 1, 10), (2, 1, 10);
        """
    )
    await conn.copy_records_to_table(
        "residents",
        columns=["id", "code", "id_type", "id_hash", "id_enc", "name_enc", "district_id"],
        records=(
            (i, f"C{i:015d}", "other", i.to_bytes(8, "big"), b"x", b"x", 1)
            for i in range(1, max(people, history) + 1)
        ),
    )
    tube = f"{HISTORY_SERIALS} + (i - 1) / {POOL}"
    await conn.execute(  # as rows, not through the triggers: their counters are not read
        f"""
        SET session_replication_role = replica;
        INSERT INTO tubes (serial, barcode, round_id, sampling_point_id, kind, capacity,
                           count, state, sealed_at)
        SELECT s, lpad(s::text, 14, '0'), 2, 1 + s % {POINTS}, 'pool', {POOL}, {POOL},
               'sealed', now() - interval '1 day'
        FROM generate_series({HISTORY_SERIALS}, {tube.replace("i", str(history))}) s;
        INSERT INTO applied_events (round_id, event_id, type, tube_serial, sample_id)
        SELECT 2, 'ev-' || i, 'sample', {tube}, i FROM generate_series(1, {history}) i;
        INSERT INTO samples (id, round_id, tube_serial, resident_id, kind, position)
        SELECT i, 2, {tube}, i, 'pool', 1 + (i - 1) % {POOL} FROM generate_series(1, {history}) i;
        SELECT setval('samples_id_seq', {history});
        INSERT INTO round_people (round_id, resident_id, sample_id)
        SELECT 2, resident_id, id FROM samples;
        SET session_replication_role = origin;
        """
    )
    await conn.execute("VACUUM ANALYZE")


class Scans:
    """Each point's clerk fills a tube, then opens the next; each scan a new person."""

    def __init__(self, conn: asyncpg.Connection, backend: int) -> None:
        self.conn = conn
        self.schedstat = Path(f"/proc/{backend}/schedstat")
        self.serial = 0
        self.person = 0
        self.filled = [POOL] * POINTS  # the swabs in each point's current tube
        self.tube = [0] * POINTS

    def cpu_ns(self) -> int:
        return int(self.schedstat.read_text().split()[0])

    async def one(self, k: int, set_up: SetUp) -> None:
        if set_up.statement:
            await self.conn.fetchval(set_up.statement)
            return
        point = k % POINTS
        opening: tuple[str | None, int | None, int | None] = (None, None, None)
        if self.filled[point] == POOL:
            self.serial += 1
            self.tube[point], self.filled[point] = self.serial, 0
            opening = (f"{self.serial:014d}", point + 1, POOL)
        self.filled[point] += 1
        self.person += 1
        event = f"ev-{self.person}" if set_up.event else None
        args = (1, self.tube[point], self.person, "pool", event)
        row = await self.conn.fetchrow(queries.TAKE_SLOT, *args, *opening)
        assert row is not None and row["outcome"] == "taken", row

    async def block(self, n: int, set_up: SetUp) -> tuple[float, float]:
        """CPU and wall microseconds a call, over ``n`` calls."""
        cpu0, t0 = self.cpu_ns(), time.perf_counter()
        for k in range(n):
            await self.one(k, set_up)
        wall = time.perf_counter() - t0
        return (self.cpu_ns() - cpu0) / n / 1e3, wall / n * 1e6


HOLLOW = (
    "CREATE OR REPLACE FUNCTION {}() RETURNS trigger LANGUAGE plpgsql"
    " AS $$ BEGIN RETURN NULL; END $$"
)


@asynccontextmanager
async def in_place(conn: asyncpg.Connection, set_up: SetUp) -> AsyncIterator[None]:
    """The database as ``set_up`` has it for the block, and as deployed again after:
    hollowed functions here (each put back from its own definition), triggers, foreign
    keys and 0012's triggers in ``switched``."""
    originals = {
        function: await conn.fetchval(
            "SELECT pg_get_functiondef(oid) FROM pg_proc WHERE proname = $1", function
        )
        for function in set_up.hollow
    }
    for function in originals:
        await conn.execute(HOLLOW.format(function))
    await switched(conn, set_up, on=False)
    try:
        yield
    finally:
        for definition in originals.values():
            await conn.execute(definition)
        await switched(conn, set_up, on=True)


async def switched(conn: asyncpg.Connection, set_up: SetUp, on: bool) -> None:
    action = "ENABLE" if on else "DISABLE"
    for table, trigger in set_up.triggers_off:
        await conn.execute(f"ALTER TABLE {table} {action} TRIGGER {trigger}")
    if set_up.replica:
        await conn.execute(f"SET session_replication_role = {'origin' if on else 'replica'}")
    if set_up.before_0013:
        await conn.execute(f"ALTER TABLE tubes {action} TRIGGER tubes_updated")
        for name in TRIGGERS_0012:
            await conn.execute(
                f"DROP TRIGGER {name} ON tubes"
                if on
                else f"CREATE TRIGGER {name} AFTER UPDATE ON tubes"
                " REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows"
                f" FOR EACH STATEMENT EXECUTE FUNCTION {name}()"
            )


async def main(args: argparse.Namespace) -> None:
    with database_server("screening-scan-parts-") as (base, _folder):
        name = f"screening_bench_{secrets.token_hex(3)}"
        await ensure_database(base, name)
        url = with_database(base, name)
        try:
            engine = create_async_engine(url)
            await migrate_engine(engine)
            await engine.dispose()
            conn = await asyncpg.connect(asyncpg_dsn(url))
            try:
                scans_needed = (args.rounds + 1) * len(SET_UPS) * (args.scans + 100)
                await seed(conn, scans_needed, args.history)
                backend = await conn.fetchval("SELECT pg_backend_pid()")
                scans = Scans(conn, backend)
                figures: dict[str, list[tuple[float, float]]] = {s.name: [] for s in SET_UPS}
                for round_no in range(args.rounds + 1):  # round 0 warms up, not counted
                    for set_up in SET_UPS:
                        async with in_place(conn, set_up):
                            await scans.block(100, set_up)  # plans made afresh
                            figure = await scans.block(args.scans, set_up)
                        if round_no:
                            figures[set_up.name].append(figure)
            finally:
                await conn.close()
        finally:
            await drop_database(base, name)
    print(f"{args.scans:,} calls a set-up, {args.rounds} rounds, medians; one connection")
    deployed_cpu = statistics.median(c for c, _ in figures["deployed"])
    deployed_wall = statistics.median(w for _, w in figures["deployed"])
    print(f"  {'set-up':<34} {'CPU µs':>8} {'saves':>7} {'wall µs':>8} {'saves':>7}")
    for name, values in figures.items():
        cpu = statistics.median(c for c, _ in values)
        wall = statistics.median(w for _, w in values)
        print(
            f"  {name:<34} {cpu:8.0f} {deployed_cpu - cpu:7.0f}"
            f" {wall:8.0f} {deployed_wall - wall:7.0f}"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scans", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--history", type=int, default=200_000, help="yesterday's scans")
    asyncio.run(main(parser.parse_args()))
