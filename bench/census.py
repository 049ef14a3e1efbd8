"""A city district's census import (issue 12), against a baseline taken in the same run:

    .venv/bin/python bench/census.py [--lines 1000000] [--scan-rate 40] [--baseline-seconds 20]
                                     [--trace scans.json] [--pg-defaults]
                                     [--pg-setting NAME=VALUE ...]

1. Writes a census CSV of ``--lines`` well-formed residents (PRC ID numbers with
   their check digits, names, phones, one district) to a temporary folder.
2. Starts `screening serve` (one process) on a fresh database, seeds a 10-in-1 round
   with residents and tubes to scan, and checkpoints (the seeding's writes reach the
   disk before the baseline, not during it).
3. Baseline: single scans (POST /rounds/{id}/samples) paced open-loop at
   ``--scan-rate`` a second for ``--baseline-seconds``: p50/p99.
4. The same paced scans while the census is uploaded (streamed from disk) and
   imported by the same process: p50/p99 during the import, the import's wall time,
   its lines a second, the server's peak RSS (sampled every 0.2 s) against its
   RSS before the upload, the WAL the import wrote and the checkpoints it set off.
   The embedded server runs with the service's WAL settings (``screening.db``,
   ``WAL_SETTINGS``); ``--pg-defaults`` leaves PostgreSQL's, and ``--pg-setting``
   changes one on top, for an A/B of them.

The figure that matters is the ratio of the scans' p99 during the import to their
p99 without it. With a few hundred scans a phase, p99 is the fifth-slowest scan, and
one stall of the machine (a disk flush of another job) holds up several scans in a
row; the count of scans slower than 50 and 100 ms in each phase is printed beside it,
and ``--trace`` writes every scan's start (``time.perf_counter()``, the same clock as
the server's) and latency, to lay them beside other measurements.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import threading
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import psutil
from service import asyncpg_dsn, day_round, running_service
from stdnum.cn import ric


def write_census(path: Path, lines: int) -> int:
    """``lines`` distinct residents; answers the file's size in bytes."""
    start = date(1940, 1, 1)
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write("id_type,id_number,name,phone,district\n")
        for i in range(lines):
            born = start + timedelta(days=i // 1000)
            body = f"310115{born:%Y%m%d}{i % 1000:03d}"
            number = body + ric.calc_check_digit(body + "0")
            out.write(f"prc_id,{number},居民{i},139{i:08d},B1\n")
    return path.stat().st_size


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def paced(rate: float, seconds: float, call: Any) -> dict[str, Any]:
    """Open loop: start ``call()`` every 1/rate s whatever the answers do (a clerk
    scanning at a steady pace does not wait for a slow answer to scan the next)."""
    latencies: list[float] = []
    starts: list[float] = []
    errors: list[str] = []
    tasks: set[asyncio.Task[None]] = set()

    async def one() -> None:
        t0 = time.perf_counter()
        try:
            outcome = await call()
        except httpx.HTTPError as exc:
            outcome = type(exc).__name__
        latencies.append(time.perf_counter() - t0)
        starts.append(t0)
        if outcome is not True:
            errors.append(str(outcome))

    start = time.perf_counter()
    n = 0
    while (now := time.perf_counter()) - start < seconds:
        due = start + n / rate
        if now < due:
            await asyncio.sleep(due - now)
        task = asyncio.create_task(one())
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        n += 1
    await asyncio.gather(*tasks)
    return {
        "requests": n,
        "p50_ms": percentile(latencies, 0.5) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "errors": len(errors),
        "error_kinds": sorted(set(errors)),
        "latencies": latencies,
        "starts": starts,
        **slow_counts(latencies),
    }


def slow_counts(latencies: list[float]) -> dict[str, int]:
    return {
        "over_50ms": sum(t > 0.05 for t in latencies),
        "over_100ms": sum(t > 0.1 for t in latencies),
    }


async def seed(client: httpx.AsyncClient, admin: dict[str, str], people: int) -> dict[str, Any]:
    """A district, a sampling point, ``people`` residents to scan, a 10-in-1 round with
    enough tubes, and the point's sampler token."""

    async def ok(path: str, body: object) -> Any:
        r = await client.post(path, json=body, headers=admin, timeout=600)
        r.raise_for_status()
        return r.json()

    await ok("/districts", {"code": "B1", "name": "基准区", "population": people})
    point = {"code": "BP1", "name": "基准采样点", "district": "B1", "stations": 50}
    await ok("/sampling-points", {**point, "people_per_hour_per_station": 60})
    lines = "id_type,id_number,name,phone,district\n" + "".join(
        f"other,S{i:09d},扫码{i},,B1\n" for i in range(people)
    )
    r = await client.post(
        "/residents/import", headers=admin, timeout=600, files={"file": ("c.csv", lines)}
    )
    r.raise_for_status()
    codes = [c["resident_code"] for c in r.json()["codes"]]
    round_id = (await ok("/rounds", day_round("bench", "B1")))["id"]
    issued = await ok(
        f"/rounds/{round_id}/barcodes", {"sampling_point": "BP1", "count": people // 10 + 10}
    )
    listing = await client.get(
        f"/rounds/{round_id}/barcodes/{issued['range_id']}", headers=admin, timeout=120
    )
    token = (await ok("/tokens", {"role": "sampler", "sampling_point": "BP1"}))["token"]
    return {
        "round": round_id,
        "codes": codes,
        "barcodes": listing.json()["barcodes"],
        "sampler": token,
    }


async def settle(db_url: str) -> None:
    """Write the seeding's dirty pages out before the baseline: otherwise the kernel
    flushes them (30 s after they were written) into the baseline's scans, whose
    commits then wait behind that flush, and the baseline measures the seeding."""
    connection = await asyncpg.connect(asyncpg_dsn(db_url))
    try:
        await connection.execute("CHECKPOINT")
    except asyncpg.PostgresError as exc:  # not a superuser: say so, measure anyway
        print(f"note: CHECKPOINT refused ({exc}); the baseline may include the seeding's flush")
    finally:
        await connection.close()
    await asyncio.sleep(2)


async def wal_state(db_url: str) -> dict[str, int]:
    """The server's WAL position (bytes) and how many checkpoints it has begun, timed
    and requested (a requested one: WAL past ``max_wal_size``, or a CHECKPOINT)."""
    connection = await asyncpg.connect(asyncpg_dsn(db_url))
    try:
        lsn = await connection.fetchval("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn")
        if await connection.fetchval("SELECT to_regclass('pg_stat_checkpointer') IS NOT NULL"):
            counts = "SELECT num_timed, num_requested FROM pg_stat_checkpointer"
        else:  # before PostgreSQL 17
            counts = "SELECT checkpoints_timed, checkpoints_req FROM pg_stat_bgwriter"
        timed, requested = await connection.fetchrow(counts)
        return {"wal_bytes": int(lsn), "timed": timed, "requested": requested}
    finally:
        await connection.close()


class PeakRss:
    """The largest RSS of a process, sampled in a thread every ``every`` seconds."""

    def __init__(self, pid: int, every: float = 0.2) -> None:
        self.process = psutil.Process(pid)
        self.every = every
        self.peak = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            self.stop.wait(self.every)

    def __enter__(self) -> PeakRss:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join()


async def run(svc: Any, census: Path, rate: float, baseline_seconds: float) -> dict[str, Any]:
    out: dict[str, Any] = {}
    async with httpx.AsyncClient(base_url=svc.base + "/api/v1", timeout=60) as client:
        scans_needed = int(rate * (baseline_seconds + 1800))
        world = await seed(client, svc.admin, scans_needed)
        await settle(svc.db_url)
        rid, codes, barcodes = world["round"], world["codes"], world["barcodes"]
        sampler = {"Authorization": f"Bearer {world['sampler']}"}
        used = 0

        async def scan() -> bool | str:
            nonlocal used
            i = used
            used += 1
            if i >= len(codes):
                return "out of people"  # the import outlasted the seeded residents
            r = await client.post(
                f"/rounds/{rid}/samples",
                headers=sampler,
                json={"tube": barcodes[i // 10], "resident_code": codes[i]},
            )
            return True if r.status_code == 201 else f"HTTP {r.status_code}"

        out["baseline"] = await paced(rate, baseline_seconds, scan)
        rss_before = psutil.Process(svc.pid).memory_info().rss
        wal_before = await wal_state(svc.db_url)
        with PeakRss(svc.pid) as peak:
            started = time.perf_counter()
            upload = asyncio.create_task(_upload(svc, census))
            during = asyncio.create_task(_paced_until(rate, scan, upload))
            response = await upload
            elapsed = time.perf_counter() - started
            out["during"] = await during
        wal_after = await wal_state(svc.db_url)
        summary = response.json()
        out["import"] = {
            "status": response.status_code,
            "seconds": elapsed,
            "created": summary["created"],
            "existing": summary["existing"],
            "rejected": len(summary["rejected"]),
            "codes": len(summary["codes"]),
            "rss_before_mb": rss_before / 1e6,
            "rss_peak_mb": peak.peak / 1e6,
            "wal_mb": (wal_after["wal_bytes"] - wal_before["wal_bytes"]) / 1e6,
            "checkpoints_timed": wal_after["timed"] - wal_before["timed"],
            "checkpoints_requested": wal_after["requested"] - wal_before["requested"],
        }
    return out


async def _paced_until(rate: float, scan: Any, done: asyncio.Task[Any]) -> dict[str, Any]:
    """Paced scans, in 5 s slices, until ``done`` finishes."""
    slices = []
    while not done.done():
        slices.append(await paced(rate, 5, scan))
    latencies = [t for s in slices for t in s["latencies"]]
    return {
        "latencies": latencies,
        "starts": [t for s in slices for t in s["starts"]],
        **slow_counts(latencies),
        "requests": sum(s["requests"] for s in slices),
        "errors": sum(s["errors"] for s in slices),
        "error_kinds": sorted({k for s in slices for k in s["error_kinds"]}),
        "p50_ms": percentile(latencies, 0.5) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
    }


async def _upload(svc: Any, path: Path) -> httpx.Response:
    async with httpx.AsyncClient(timeout=3600) as client:
        with path.open("rb") as fh:  # httpx streams the multipart body from the file
            return await client.post(
                f"{svc.base}/api/v1/residents/import",
                headers=svc.admin,
                files={"file": ("census.csv", fh, "text/csv")},
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--scan-rate", type=float, default=40)
    parser.add_argument("--baseline-seconds", type=float, default=20)
    parser.add_argument("--trace", type=Path, help="write each scan's start and latency here")
    parser.add_argument(
        "--pg-defaults",
        action="store_true",
        help="the embedded server at PostgreSQL's WAL defaults, not the service's",
    )
    parser.add_argument(
        "--pg-setting",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting of the embedded server on top of those (repeatable)",
    )
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="screening-census-"))
    census = folder / "census.csv"
    size = write_census(census, args.lines)
    print(f"census: {args.lines:,} lines, {size / 1e6:.1f} MB")
    settings = dict(setting.split("=", 1) for setting in args.pg_setting)
    with running_service(pg_defaults=args.pg_defaults, pg_settings=settings) as svc:
        out = asyncio.run(run(svc, census, args.scan_rate, args.baseline_seconds))
    b, d, i = out["baseline"], out["during"], out["import"]
    print(
        f"import: HTTP {i['status']}, {i['seconds']:.1f} s, {args.lines / i['seconds']:,.0f}"
        f" lines/s; created {i['created']:,}, existing {i['existing']:,},"
        f" rejected {i['rejected']:,}, codes {i['codes']:,}"
    )
    print(f"server RSS: {i['rss_before_mb']:.0f} MB before, peak {i['rss_peak_mb']:.0f} MB")
    print(
        f"WAL during the import: {i['wal_mb']:,.0f} MB; checkpoints begun:"
        f" {i['checkpoints_timed']} timed, {i['checkpoints_requested']} requested"
    )
    print(
        f"scans at {args.scan_rate:.0f}/s without import: p50 {b['p50_ms']:.1f} ms,"
        f" p99 {b['p99_ms']:.1f} ms, errors {b['errors']};"
        f" over 50/100 ms: {b['over_50ms']}/{b['over_100ms']} of {b['requests']}"
    )
    print(
        f"scans at {args.scan_rate:.0f}/s during import:  p50 {d['p50_ms']:.1f} ms,"
        f" p99 {d['p99_ms']:.1f} ms, errors {d['errors']} of {d['requests']}"
        f" {d['error_kinds'] or ''}; over 50/100 ms: {d['over_50ms']}/{d['over_100ms']}"
    )
    print(f"p99 ratio (during / without): {d['p99_ms'] / b['p99_ms']:.2f}")
    if args.trace:
        phases = {
            phase: [[t, lat] for t, lat in zip(p["starts"], p["latencies"], strict=True)]
            for phase, p in (("without", b), ("during", d))
        }
        args.trace.write_text(json.dumps({**phases, "import": i}))


if __name__ == "__main__":
    main()
