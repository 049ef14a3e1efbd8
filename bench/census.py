"""A city district's census import (issue 12), against a baseline taken in the same run:

    .venv/bin/python bench/census.py [--lines 1000000] [--scan-rate 40] [--baseline-seconds 20]

1. Writes a census CSV of ``--lines`` well-formed residents (PRC ID numbers with
   their check digits, names, phones, one district) to a temporary folder.
2. Starts `screening serve` (one process) on a fresh database, seeds a 10-in-1 round
   with residents and tubes to scan.
3. Baseline: single scans (POST /rounds/{id}/samples) paced open-loop at
   ``--scan-rate`` a second for ``--baseline-seconds``: p50/p99.
4. The same paced scans while the census is uploaded (streamed from disk) and
   imported by the same process: p50/p99 during the import, the import's wall time,
   its lines a second, and the server's peak RSS (sampled every 0.2 s) against its
   RSS before the upload.

The figure that matters is the ratio of the scans' p99 during the import to their
p99 without it: the import's CPU work runs in a worker thread, batch by batch, so
the event loop keeps answering scans.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import threading
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import psutil
from load import seed as seed_round
from pressure import paced
from service import running_service
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
        world = await seed_round(client, scans_needed, scans_needed // 10 + 10, svc.admin)
        rid, codes, barcodes = world["round"], world["codes"], world["barcodes"]
        sampler = {"Authorization": f"Bearer {world['sampler']}"}
        used = 0

        async def scan(_: int) -> bool | str:
            nonlocal used
            i = used
            used += 1
            r = await client.post(
                f"/rounds/{rid}/samples",
                headers=sampler,
                json={"tube": barcodes[i // 10], "resident_code": codes[i]},
            )
            return True if r.status_code == 201 else f"{r.status_code} {r.text[:80]}"

        out["baseline"] = await paced(rate, baseline_seconds, scan)
        rss_before = psutil.Process(svc.pid).memory_info().rss
        with PeakRss(svc.pid) as peak:
            started = time.perf_counter()
            upload = asyncio.create_task(_upload(svc, census))
            during = asyncio.create_task(_paced_until(rate, scan, upload))
            response = await upload
            elapsed = time.perf_counter() - started
            out["during"] = await during
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
        }
    return out


async def _paced_until(rate: float, scan: Any, done: asyncio.Task[Any]) -> dict[str, Any]:
    """Paced scans in 5 s slices until ``done`` finishes; the slices' figures merged."""
    latencies: list[dict[str, Any]] = []
    while not done.done():
        latencies.append(await paced(rate, 5, scan))
    requests = sum(s["requests"] for s in latencies)
    return {
        "requests": requests,
        "errors": sum(s["errors"] for s in latencies),
        # slices are equal in length and rate: the worst slice bounds the p99
        "p50_ms": sorted(s["p50_ms"] for s in latencies)[len(latencies) // 2],
        "p99_ms": max(s["p99_ms"] for s in latencies),
        "p99_ms_median_slice": sorted(s["p99_ms"] for s in latencies)[len(latencies) // 2],
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
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="screening-census-"))
    census = folder / "census.csv"
    size = write_census(census, args.lines)
    print(f"census: {args.lines:,} lines, {size / 1e6:.1f} MB")
    with running_service() as svc:
        out = asyncio.run(run(svc, census, args.scan_rate, args.baseline_seconds))
    b, d, i = out["baseline"], out["during"], out["import"]
    print(
        f"import: HTTP {i['status']}, {i['seconds']:.1f} s, {args.lines / i['seconds']:,.0f}"
        f" lines/s; created {i['created']:,}, existing {i['existing']:,},"
        f" rejected {i['rejected']:,}, codes {i['codes']:,}"
    )
    print(f"server RSS: {i['rss_before_mb']:.0f} MB before, peak {i['rss_peak_mb']:.0f} MB")
    print(
        f"scans at {args.scan_rate:.0f}/s without import: p50 {b['p50_ms']:.1f} ms,"
        f" p99 {b['p99_ms']:.1f} ms, errors {b['errors']}"
    )
    print(
        f"scans at {args.scan_rate:.0f}/s during import:  p50 {d['p50_ms']:.1f} ms,"
        f" p99 {d['p99_ms']:.1f} ms (median 5 s slice {d['p99_ms_median_slice']:.1f} ms),"
        f" errors {d['errors']} of {d['requests']}"
    )
    print(f"p99 ratio (during / without): {d['p99_ms'] / b['p99_ms']:.2f}")


if __name__ == "__main__":
    main()
