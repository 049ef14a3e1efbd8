"""Closed-loop load against a running service, from Python (httpx): N workers each
sending one request after another, for a time or until something is done; and the
seed a scan benchmark needs (a district, a point with 50 stations, residents by census
import, a 10-in-1 round with barcodes, a sampler token). bench/load.py drives scans
with wrk; this is for figures taken while something else runs (bench/pressure.py).
"""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Awaitable, Callable

import httpx
from service import day_round  # beside this script


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
    client: httpx.AsyncClient, residents: int, tubes: int, headers: dict[str, str]
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
    rnd = await ok("/rounds", day_round("bench", "B1"))
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
