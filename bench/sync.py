"""Offline sync (``POST /rounds/{id}/sync``, issue 15) against a raw COPY, and where a
5,000-event batch's time goes.

    flock /tmp/bench.lock .venv/bin/python bench/sync.py [--batches 3] [--py-spy]

Seeds its own round like ``bench/load.py`` (embedded PostgreSQL in a temporary folder,
or the server of SCREENING_DATABASE_URL in a fresh database; ``screening serve`` on a
free port; one sampling point, a census import, a 10-in-1 round), then in one run:

1. **the figure**: ``bench/load.py``'s own ``measure_sync`` (5,000-event batches from one
   point through httpx, median batch, against asyncpg ``copy_records_to_table`` of
   5,000 sample-shaped rows into an unindexed table): events/s, rows/s, their ratio;
2. **the breakdown** of one more batch, replayed in this process through the service's
   own functions on a session of its own (after a warm-up batch, so plans and PL/pgSQL
   functions are cached as in a running service): the request's JSON decode and
   envelope validation, reading the events, each SQL statement's wall time (client
   side) and execution time (server side, ``auto_explain`` sent back as notices) with
   the triggers it fired, the Python between statements (the replay of the rules,
   building parameters), the answer's encoding and the commit;
3. with ``--py-spy``, more batches through HTTP under ``py-spy record`` of the service
   process: its CPU by stage (inclusive samples of the functions named in ``STAGES``).

The seeded database is vacuumed and analysed before anything is measured (a census
is imported long before a round; without it the first batch to read each freshly
imported resident sets its hint bits). Figures are ratios within the run: the machine
is shared (note ``uptime``).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
from load import ADMIN, H, census, measure_sync  # beside this script
from service import day_round, running_service
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from pooling.barcodes import parse_barcode
from screening.config import Settings
from screening.privacy import load_vault
from screening.sampling import sync as sync_module
from screening.sampling.schemas import SyncBatch
from screening.tokens.service import Principal

POINT = "BSYNC"
BATCH = 5000


# ---- seeding -----------------------------------------------------------------------


async def seed(client: httpx.AsyncClient, batches: int) -> dict[str, Any]:
    """A district, one sampling point, ``batches`` x 5,000 residents, a 10-in-1 round,
    500 tubes a batch, a sampler token: the world of ``load.measure_sync``."""

    async def ok(path: str, body: object) -> dict[str, Any]:
        r = await client.post(path, json=body, headers=H, timeout=600)
        r.raise_for_status()
        return dict(r.json())

    residents = BATCH * batches
    await ok("/districts", {"code": "B1", "name": "基准区", "population": residents})
    await ok(
        "/sampling-points",
        {
            "code": POINT,
            "name": "基准采样点",
            "district": "B1",
            "stations": 10,
            "people_per_hour_per_station": 60,
        },
    )
    r = await client.post(
        "/residents/import",
        headers=H,
        timeout=600,
        files={"file": ("c.csv", io.BytesIO("\n".join(census(residents)).encode()))},
    )
    r.raise_for_status()
    codes = [c["resident_code"] for c in r.json()["codes"]]
    round_id = (await ok("/rounds", day_round("sync bench", "B1")))["id"]
    issued = await ok(
        f"/rounds/{round_id}/barcodes", {"sampling_point": POINT, "count": 500 * batches + 10}
    )
    listing = await client.get(
        f"/rounds/{round_id}/barcodes/{issued['range_id']}", headers=H, timeout=120
    )
    token = await ok("/tokens", {"role": "sampler", "sampling_point": POINT})
    return {
        "round": round_id,
        "codes": codes,
        "barcodes": {POINT: listing.json()["barcodes"]},
        "tokens": {POINT: token["token"]},
    }


def batch_events(world: dict[str, Any], first_tube: int, first_person: int) -> list[Any]:
    """The events ``load.measure_sync`` sends: ten people a tube, in order."""
    tubes, people = world["barcodes"][POINT], world["codes"]
    return [
        {
            "event_id": f"bench-{first_person + k}",
            "type": "sample",
            "tube": tubes[first_tube + k // 10],
            "resident_code": people[first_person + k],
            "at": datetime.now(UTC).isoformat(),
        }
        for k in range(BATCH)
    ]


# ---- the breakdown -----------------------------------------------------------------


class Stages:
    """Wall time by stage; SQL statements by name, with the server's own figures."""

    def __init__(self) -> None:
        self.wall: dict[str, float] = defaultdict(float)
        self.sql: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        self.triggers: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        self.python: dict[str, float] = defaultdict(float)
        self.order: list[str] = []

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.wall[name] += time.perf_counter() - t0
            if name not in self.order:
                self.order.append(name)


def statement_name(sql: str) -> str:
    """A statement's name in the service's modules, else its first words."""
    for module in _sql_modules():
        for name, value in vars(module).items():
            known = value if isinstance(value, str) else getattr(value, "text", None)
            if isinstance(known, str) and known.strip() == sql.strip() and name.isupper():
                return name.lstrip("_")
    words = " ".join(sql.split())
    return words[:60]


def _sql_modules() -> list[Any]:
    from screening.retests import service as retests
    from screening.sampling import queries, walkins

    return [queries, sync_module, walkins, retests]


def record_statements(engine: Any, stages: Stages) -> Any:
    """Client-side wall time of every statement sent through SQLAlchemy; answers the
    function that stops recording."""

    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        conn.info.setdefault("t0", []).append(time.perf_counter())

    def after(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        spent = time.perf_counter() - conn.info["t0"].pop()
        name = statement_name(statement)
        stages.sql[name]["wall"] += spent
        stages.sql[name]["calls"] += 1

    event.listen(engine.sync_engine, "before_cursor_execute", before)
    event.listen(engine.sync_engine, "after_cursor_execute", after)

    # statements sent on the raw asyncpg connection (SQLAlchemy's adapter goes through
    # prepared statements, not these methods, so nothing is counted twice)
    originals = {m: getattr(asyncpg.Connection, m) for m in RAW_METHODS}

    def timed(method: str) -> Any:
        original = originals[method]

        async def call(self: Any, query: str, *args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return await original(self, query, *args, **kwargs)
            finally:
                # not the bench's own auto_explain, nor the transaction (timed as commit)
                if not query.startswith(("LOAD", "SET", "BEGIN", "COMMIT", "ROLLBACK")):
                    name = statement_name(query) if method != "copy_records_to_table" else query
                    stages.sql[name]["wall"] += time.perf_counter() - t0
                    stages.sql[name]["calls"] += 1

        return call

    for method in RAW_METHODS:
        setattr(asyncpg.Connection, method, timed(method))

    def stop() -> None:
        event.remove(engine.sync_engine, "before_cursor_execute", before)
        event.remove(engine.sync_engine, "after_cursor_execute", after)
        for method, original in originals.items():
            setattr(asyncpg.Connection, method, original)

    return stop


RAW_METHODS = ("fetch", "fetchrow", "fetchval", "execute", "executemany", "copy_records_to_table")


def record_plans(raw: Any, plans: list[dict[str, Any]]) -> Any:
    """auto_explain's plans, sent back as notices (read once the batch is done)."""

    def listener(_conn: Any, message: Any) -> None:  # asyncpg's log listener
        text = str(getattr(message, "message", message))
        if "Query Text" in text:
            with suppress(ValueError):
                plans.append(json.loads(text[text.index("{") :]))

    raw.add_log_listener(listener)
    return listener


TRIGGER_NAMES: dict[str, str] = {}  # RI_ConstraintTrigger_c_NNN -> its foreign key's name


def read_plans(plans: list[dict[str, Any]], stages: Stages) -> None:
    """Server execution time per statement and the triggers it fired."""
    for plan in plans:
        name = statement_name(plan.get("Query Text", ""))
        if name not in stages.sql:
            continue
        stages.sql[name]["server"] += plan["Plan"].get("Actual Total Time", 0.0) / 1000
        for trig in plan.get("Triggers", []):
            name_of = TRIGGER_NAMES.get(trig["Trigger Name"], trig["Trigger Name"])
            key = f"{name_of} on {trig['Relation']}"
            stages.triggers[name][key] += trig.get("Time", 0.0) / 1000
            stages.triggers[name][key + " calls"] += trig["Calls"]
        triggers = plan.get("Triggers", [])
        stages.sql[name]["triggers"] += sum(t.get("Time", 0.0) for t in triggers) / 1000


async def breakdown(
    db_url: str, folder: Path, world: dict[str, Any], first_tube: int, first_person: int
) -> tuple[Stages, Stages]:
    """Three batches on one connection, each in its own transaction: a warm-up, one
    timed plainly (the wall-time split), one under auto_explain (the server's split:
    ANALYZE costs time of its own, so only its shares are read). This process's own
    heap (the seeded world) is frozen out of the garbage collector first, so its full
    collections do not land in the batch's figures (the service's are measured apart:
    bench/README.md)."""
    gc.collect()
    gc.freeze()
    engine = create_async_engine(db_url, pool_size=1, max_overflow=0)
    vault = load_vault(Settings(data_dir=folder, database_url=db_url))
    plain, explained, warm = Stages(), Stages(), Stages()
    try:
        async with engine.connect() as conn:
            point = await conn.exec_driver_sql(
                "SELECT id FROM sampling_points WHERE code = $1", (POINT,)
            )
            principal = Principal("sampler", sampling_point_id=point.scalar_one())
            # foreign-key checks appear in plans under their triggers' names
            constraints = await conn.exec_driver_sql(
                "SELECT t.tgname, c.conname FROM pg_trigger t"
                " JOIN pg_constraint c ON c.oid = t.tgconstraint"
                " WHERE t.tgname LIKE 'RI_ConstraintTrigger%'"
            )
            TRIGGER_NAMES.update(dict(constraints.all()))
        for stages in (warm, plain, explained):
            events = batch_events(world, first_tube, first_person)
            first_tube, first_person = first_tube + BATCH // 10, first_person + BATCH
            recorder = record_statements(engine, stages)
            try:
                await apply_once(
                    engine, principal, vault, world["round"], events, stages, stages is explained
                )
            finally:
                recorder()
    finally:
        await engine.dispose()
    return plain, explained


async def apply_once(
    engine: Any,
    principal: Principal,
    vault: Any,
    round_id: int,
    events: list[Any],
    stages: Stages,
    explain: bool,
) -> None:
    body = orjson.dumps({"events": events})
    plans: list[dict[str, Any]] = []
    async with AsyncSession(engine, expire_on_commit=False) as session:
        raw = (await (await session.connection()).get_raw_connection()).driver_connection
        if explain:
            await raw.execute(
                "LOAD 'auto_explain'; SET auto_explain.log_min_duration = 0;"
                " SET auto_explain.log_analyze = on; SET auto_explain.log_triggers = on;"
                " SET auto_explain.log_timing = on; SET auto_explain.log_format = json;"
                " SET auto_explain.log_level = notice;"
            )
        listener = record_plans(raw, plans)
        t0 = time.perf_counter()
        with stages.stage("request: JSON decode"):
            parsed = json.loads(body)  # what FastAPI does with the body
        with stages.stage("request: envelope + events (pydantic SyncBatch)"):
            batch = SyncBatch.model_validate(parsed)
        with stages.stage("apply (statements + Python between them)"), timed_python(stages):
            answer = await sync_module.apply_sync(session, principal, vault, round_id, batch.events)
        with stages.stage("answer: encode"):
            orjson.dumps(answer.model_dump(mode="json", exclude_none=True))
        with stages.stage("commit"):
            await session.commit()
        stages.wall["total"] += time.perf_counter() - t0
        if explain:
            await raw.execute("SET auto_explain.log_min_duration = -1")
        raw.remove_log_listener(listener)
    read_plans(plans, stages)
    assert answer.applied == len(events), answer


# the apply's own Python steps, timed where the service calls them (the same names
# before and after issue 15's changes)
PYTHON_STEPS = {"read_events": "reading the events", "_replay": "replaying the rules"}


@contextmanager
def timed_python(stages: Stages) -> Iterator[None]:
    originals = {name: getattr(sync_module, name) for name in PYTHON_STEPS}

    def timed(name: str) -> Any:
        original = originals[name]

        def call(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                stages.python[PYTHON_STEPS[name]] += time.perf_counter() - t0

        return call

    for name in PYTHON_STEPS:
        setattr(sync_module, name, timed(name))
    try:
        yield
    finally:
        for name, original in originals.items():
            setattr(sync_module, name, original)


def show_breakdown(plain: Stages, explained: Stages) -> None:
    total = plain.wall["total"]
    sql_wall = sum(v["wall"] for v in plain.sql.values())
    print(f"\nbreakdown of one 5,000-event batch (in-process, warm): {total * 1000:.0f} ms")
    print(f"  {'stage':60} {'ms':>7} {'share':>6}")
    for name in plain.order:
        print(f"  {name:60} {plain.wall[name] * 1000:7.1f} {plain.wall[name] / total:6.1%}")
        if not name.startswith("apply"):
            continue
        for sql, fig in sorted(plain.sql.items(), key=lambda kv: -kv[1]["wall"]):
            label = f"sql {sql[:44]} x{fig['calls']:.0f}"
            print(f"    {label:58} {fig['wall'] * 1000:7.1f} {fig['wall'] / total:6.1%}")
        python = plain.wall[name] - sql_wall
        label = "Python between statements, of which:"
        print(f"    {label:58} {python * 1000:7.1f} {python / total:6.1%}")
        for step, spent in plain.python.items():
            print(f"      {step:56} {spent * 1000:7.1f} {spent / total:6.1%}")
            python -= spent
        label = "the rest (parameters, results, answer objects)"
        print(f"      {label:56} {python * 1000:7.1f} {python / total:6.1%}")
    print(
        "\nthe same statements under auto_explain (ANALYZE with timing; another batch):"
        " server execution, and the triggers' share of it"
    )
    for sql, fig in sorted(explained.sql.items(), key=lambda kv: -kv[1]["server"]):
        if fig["server"] < 0.0005:
            continue
        print(
            f"  {sql[:50]:50} wall {fig['wall'] * 1000:7.1f} ms, server {fig['server'] * 1000:7.1f}"
            f" ms, triggers {fig['triggers'] * 1000:7.1f} ms"
        )
        triggers = explained.triggers.get(sql, {})
        for trig, t in sorted(triggers.items(), key=lambda kv: -kv[1]):
            if not trig.endswith(" calls"):
                calls = triggers[trig + " calls"]
                print(f"      {trig[:56]:56} {t * 1000:7.1f} ms  x{calls:.0f}")


# ---- the schema's floor ---------------------------------------------------------


TUBE_COLUMNS = [
    *("serial", "barcode", "round_id", "sampling_point_id", "kind"),
    *("capacity", "count", "state", "opened_at", "sealed_at"),
]
SAMPLE_COLUMNS = ["id", "round_id", "tube_serial", "resident_id", "kind", "position", "sampled_at"]


async def schema_floor(
    db_url: str, world: dict[str, Any], first_tube: int, first_person: int, runs: int = 3
) -> tuple[dict[str, float], list[tuple[str, float]]]:
    """A batch's rows COPYed straight into the real tables (every index, foreign key
    and trigger of the schema; round_people set-wise as the sync writes it; no rules,
    no claims read back), in a transaction rolled back: the least any sync of these
    rows can cost with this schema. Median by table."""
    conn = await asyncpg.connect(db_url.replace("postgresql+asyncpg", "postgresql"))
    try:
        point = await conn.fetchval("SELECT id FROM sampling_points WHERE code = $1", POINT)
        tubes = world["barcodes"][POINT][first_tube : first_tube + BATCH // 10]
        serials = [parse_barcode(b) for b in tubes]
        people = world["codes"][first_person : first_person + BATCH]
        ids = dict(await conn.fetch("SELECT code, id FROM residents WHERE code = ANY($1)", people))
        now = datetime.now(UTC)
        round_id = world["round"]
        tube_rows = [
            (serial, b, round_id, point, "pool", 10, 10, "sealed", now, now)
            for serial, b in zip(serials, tubes, strict=True)
        ]

        def sample_rows(sample_ids: range) -> list[Any]:
            return [
                (sid, round_id, serials[k // 10], ids[people[k]], "pool", k % 10 + 1, now)
                for k, sid in enumerate(sample_ids)
            ]

        figures: dict[str, list[float]] = defaultdict(list)
        for _ in range(runs):
            tx = conn.transaction()
            await tx.start()
            try:
                first_id = await conn.fetchval(
                    "SELECT nextval('samples_id_seq') FROM generate_series(1, $1)"
                    " ORDER BY 1 DESC LIMIT 1",
                    BATCH,
                )
                sample_ids = range(first_id - BATCH + 1, first_id + 1)
                claims = [
                    (round_id, f"floor-{k}", "sample", serials[k // 10], sid)
                    for k, sid in enumerate(sample_ids)
                ]
                firsts = [(round_id, ids[people[k]], sid) for k, sid in enumerate(sample_ids)]
                samples = sample_rows(sample_ids)
                t0 = time.perf_counter()
                await conn.copy_records_to_table("tubes", records=tube_rows, columns=TUBE_COLUMNS)
                t1 = time.perf_counter()
                await conn.copy_records_to_table(
                    "applied_events",
                    records=claims,
                    columns=["round_id", "event_id", "type", "tube_serial", "sample_id"],
                )
                t2 = time.perf_counter()
                await conn.copy_records_to_table(
                    "round_people",
                    records=firsts,
                    columns=["round_id", "resident_id", "sample_id"],
                )
                await conn.execute("SELECT set_config('screening.people_inserted', 'on', true)")
                await conn.copy_records_to_table("samples", records=samples, columns=SAMPLE_COLUMNS)
                t3 = time.perf_counter()
                figures["tubes"].append(t1 - t0)
                figures["applied_events"].append(t2 - t1)
                figures["round_people + samples"].append(t3 - t2)
                figures["total"].append(t3 - t0)
            finally:
                await tx.rollback()
        parts = await samples_parts(conn, tube_rows, sample_rows(range(1, BATCH + 1)))
    finally:
        await conn.close()
    return {k: statistics.median(v) for k, v in figures.items()}, parts


# what each part of the samples table costs a 5,000-row COPY: a bare copy of the table,
# then its parts added one by one (each variant in a transaction rolled back)
SAMPLES_PARTS = [
    ("bare table (no index, key, trigger)", []),
    (
        "+ primary key and the 3 indexes",
        [
            "ALTER TABLE floor_samples ADD PRIMARY KEY (id)",
            "CREATE UNIQUE INDEX ON floor_samples (tube_serial, resident_id)",
            "CREATE INDEX ON floor_samples (resident_id)",
            "CREATE INDEX ON floor_samples (round_id, resident_id)",
        ],
    ),
    (
        "+ the 3 foreign keys (a check per row each)",
        [
            "ALTER TABLE floor_samples ADD FOREIGN KEY (round_id) REFERENCES rounds (id)",
            "ALTER TABLE floor_samples ADD FOREIGN KEY (tube_serial) REFERENCES tubes (serial)",
            "ALTER TABLE floor_samples ADD FOREIGN KEY (resident_id) REFERENCES residents (id)",
        ],
    ),
    (
        "+ round_people row trigger",
        [
            "CREATE TRIGGER p BEFORE INSERT ON floor_samples FOR EACH ROW"
            " EXECUTE FUNCTION progress_first_sample()"
        ],
    ),
    (
        "+ counters and feed marks (statement triggers)",
        [
            "CREATE TRIGGER c AFTER INSERT ON floor_samples REFERENCING NEW TABLE AS new_rows"
            " FOR EACH STATEMENT EXECUTE FUNCTION progress_samples_inserted()",
            "CREATE TRIGGER f AFTER INSERT ON floor_samples REFERENCING NEW TABLE AS new_rows"
            " FOR EACH STATEMENT EXECUTE FUNCTION feed_mark_samples()",
        ],
    ),
]


async def samples_parts(
    conn: Any, tube_rows: list[Any], sample_rows: list[Any], runs: int = 3
) -> list[tuple[str, float]]:
    """Median COPY time of the batch's samples into ``floor_samples`` built up part by
    part (the batch's tubes are inserted first, for the keys and the counters)."""
    out = []
    for n, (label, _) in enumerate(SAMPLES_PARTS):
        times = []
        for _ in range(runs):
            tx = conn.transaction()
            await tx.start()
            try:
                await conn.copy_records_to_table("tubes", records=tube_rows, columns=TUBE_COLUMNS)
                await conn.execute("CREATE TABLE floor_samples (LIKE samples INCLUDING DEFAULTS)")
                for _, statements in SAMPLES_PARTS[: n + 1]:
                    for statement in statements:
                        await conn.execute(statement)
                t0 = time.perf_counter()
                await conn.copy_records_to_table(
                    "floor_samples", records=sample_rows, columns=SAMPLE_COLUMNS
                )
                times.append(time.perf_counter() - t0)
            finally:
                await tx.rollback()
        out.append((label, statistics.median(times)))
    return out


def show_floor(
    floor: dict[str, float], parts: list[tuple[str, float]], figure: dict[str, float]
) -> None:
    copy = BATCH / figure["copy_rows_per_s"]
    print(
        f"\nthe schema's floor: a batch's rows COPYed into the real tables (no rules),"
        f" {floor['total'] * 1000:.1f} ms = ratio {copy / floor['total']:.3f} to raw COPY"
    )
    for table in ("tubes", "applied_events", "round_people + samples"):
        print(f"  {table:24} {floor[table] * 1000:7.1f} ms")
    print("  the samples COPY, built up part by part:")
    for label, spent in parts:
        print(f"    {label:50} {spent * 1000:7.1f} ms  ratio {copy / spent:.3f}")


# ---- py-spy ------------------------------------------------------------------------

# inclusive samples of these frames (first match from the innermost frame outwards)
STAGES = [
    ("answer: FastAPI serialize_response", ("serialize_response",)),
    ("replay rules (_replay)", ("_replay",)),
    ("read events (read_events)", ("read_events",)),
    ("walk-ins", ("walk_ins",)),
    ("SQL: write (_write)", ("_write",)),
    ("SQL: lock tubes", ("_lock_tubes",)),
    ("SQL: people", ("_people",)),
    ("apply_sync, other", ("apply_sync", "_apply")),
    ("request: body + validation", ("request_body_to_args", "_validate_request_body", "body")),
    ("commit", ("commit",)),
]


def summarize_py_spy(raw: Path) -> tuple[int, Counter[str], Counter[str]]:
    by_stage: Counter[str] = Counter()
    by_leaf: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        body, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        frames = [f.strip() for f in body.split(";")]
        if not frames or frames[0].startswith("process"):
            frames = frames[1:]
        total += n
        names = [f.split(" (", 1)[0] for f in frames]
        for label, funcs in STAGES:
            if any(name in funcs for name in names):
                by_stage[label] += n
                break
        else:
            idle = any("select" in name or name == "_run_once" for name in names[-2:])
            by_stage["idle / event loop" if idle else "other"] += n
        by_leaf[frames[-1][:90]] += n
    return total, by_stage, by_leaf


def start_py_spy(pid: int, out: Path) -> subprocess.Popen[bytes] | None:
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(py_spy).exists():
        return None
    return subprocess.Popen(
        [
            *(py_spy, "record", "--pid", str(pid), "--rate", "250", "--format", "raw"),
            *("--nonblocking", "-o", str(out)),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def spy_batches(
    base: str, pid: int, world: dict[str, Any], first_tube: int, first_person: int, n: int
) -> Path | None:
    out = Path(tempfile.mkdtemp(prefix="sync-spy-")) / "py-spy.txt"
    spy = start_py_spy(pid, out)
    if spy is None:
        return None
    await asyncio.sleep(1.0)
    sampler = {"Authorization": f"Bearer {world['tokens'][POINT]}"}
    async with httpx.AsyncClient(base_url=base + "/api/v1", timeout=300) as client:
        for b in range(n):
            events = batch_events(world, first_tube + b * 500, first_person + b * BATCH)
            r = await client.post(
                f"/rounds/{world['round']}/sync", headers=sampler, json={"events": events}
            )
            assert r.json()["applied"] == BATCH, r.text[:300]
    spy.send_signal(2)  # SIGINT: py-spy writes what it has
    spy.wait(30)
    return out if out.exists() else None


# ---- the run -----------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=3, help="measured HTTP batches")
    parser.add_argument("--py-spy", action="store_true", help="3 more batches under py-spy")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    spied = 3 if args.py_spy else 0
    total_batches = args.batches + 3 + spied

    with running_service(admin_token=ADMIN) as svc:  # load.H carries ADMIN
        result = asyncio.run(
            run(args, svc.base, svc.db_url, svc.folder, svc.pid, total_batches, spied)
        )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, default=str))


async def run(
    args: argparse.Namespace,
    base: str,
    db_url: str,
    folder: Path,
    pid: int,
    total_batches: int,
    spied: int,
) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=base + "/api/v1", timeout=30) as client:
        world = await seed(client, total_batches)
    # the census was imported long before a round in the field: its rows' hint bits are
    # set and the tables analysed (else the first batch to read each resident pays it)
    conn = await asyncpg.connect(db_url.replace("postgresql+asyncpg", "postgresql"))
    try:
        await conn.execute("VACUUM (ANALYZE)")
    finally:
        await conn.close()
    load_before = os.getloadavg()
    async with httpx.AsyncClient(base_url=base + "/api/v1", timeout=30) as client:
        figure = await measure_sync(
            client, world, world["codes"][: BATCH * args.batches], args.batches, db_url
        )
    ratio = figure["events_per_s"] / figure["copy_rows_per_s"]
    print(
        f"sync, {args.batches} batches of 5,000 (one point, httpx)"
        f"  {figure['events_per_s']:9.0f} events/s  (median {BATCH / figure['events_per_s']:.3f} s)"
    )
    print(
        f"raw asyncpg COPY of 5,000 rows                  {figure['copy_rows_per_s']:9.0f} rows/s"
    )
    print(f"  ratio to COPY                                 {ratio:.3f}   (goal >= 0.25)")
    print(f"  load average before / after: {load_before} / {os.getloadavg()}")
    tube, person = 500 * args.batches, BATCH * args.batches
    floor, parts = await schema_floor(db_url, world, tube, person)
    show_floor(floor, parts, figure)
    plain, explained = await breakdown(db_url, folder, world, tube, person)
    show_breakdown(plain, explained)
    tube, person = tube + 1500, person + 3 * BATCH
    spy: dict[str, Any] = {}
    if spied:
        raw = await spy_batches(base, pid, world, tube, person, spied)
        if raw is None:
            print("\npy-spy not found")
        else:
            total, by_stage, by_leaf = summarize_py_spy(raw)
            print(f"\npy-spy, {spied} batches through HTTP, service process ({total} samples):")
            for label, n in by_stage.most_common():
                print(f"  {label:50} {n / total:6.1%}")
            print("  innermost frames:")
            for leaf, n in by_leaf.most_common(15):
                print(f"    {leaf:90} {n / total:6.1%}")
            spy = {"stages": dict(by_stage), "total": total}
    return {
        "events_per_s": figure["events_per_s"],
        "copy_rows_per_s": figure["copy_rows_per_s"],
        "ratio": ratio,
        "load": load_before,
        "floor": floor,
        "floor_samples_parts": parts,
        "breakdown": dict(plain.wall),
        "sql": {k: dict(v) for k, v in plain.sql.items()},
        "python": dict(plain.python),
        "server": {k: dict(v) for k, v in explained.sql.items()},
        "triggers": {k: dict(v) for k, v in explained.triggers.items()},
        "py_spy": spy,
    }


if __name__ == "__main__":
    main()
