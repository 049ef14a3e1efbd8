"""The result feed under a lab-day (issue 14): what its writes cost the ingestion, how
long sequencing takes, and how fast a platform drains it.

    .venv/bin/python bench/result_feed.py [--tubes 210000]

It starts `screening serve` on a fresh database (bench/service.py), seeds through COPY
three identical lab-days of ``--tubes`` received 10-in-1 tubes each, with their ten
residents per tube and their samples (the feed's marks switched off while seeding), and
measures in the same run:

1. uploading lab-days A and C with the feed's triggers switched off, then lab-day B
   with them on (the same file shape over HTTP, one lis-csv each): B / mean(A, C);
2. the time until the background worker has numbered every change of lab-day B;
3. draining those changes through ``GET /feed/results`` in pages of 5,000 (full
   identities decrypted, JSON over HTTP) against a raw asyncpg fetch of the same rows
   in the same pages from the same database.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import random
import secrets
import tempfile
import time
from datetime import UTC, datetime

import asyncpg
import httpx
from ingest import WELLS
from ingest import seed as seed_tubes
from service import asyncpg_dsn, running_service

from pooling.barcodes import format_barcode
from screening.privacy import Vault

PAGE = 5000


def lab_day(first: int, tubes: int) -> bytes:
    """A lis-csv lab-day for serials first..first+tubes-1: 94 tubes and 2 controls a
    plate, 0.1% positive."""
    rng = random.Random(first)
    lines = ["plate,well,sample,role,ORF1ab,N,IC"]
    serial, plate_no = first, 0
    while serial < first + tubes:
        plate_no += 1
        plate = f"F{first}-{plate_no:05d}"
        lines += [f"{plate},A1,NTC,ntc,,,", f"{plate},A2,PC,pc,28.31,29.02,27.5"]
        for well in WELLS[2:]:
            if serial >= first + tubes:
                break
            cts = "25.1,26.3" if rng.random() < 0.001 else ","
            lines.append(f"{plate},{well},{format_barcode(serial)},sample,{cts},26.0")
            serial += 1
    return ("\n".join(lines) + "\n").encode()


async def seed(dsn: str, tubes: int, vault: Vault) -> None:
    await seed_tubes(dsn, 3 * tubes)  # bench/ingest.py's lab, round and received tubes
    now = datetime.now(UTC)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("ALTER TABLE samples DISABLE TRIGGER feed_mark_samples")
        # a thousand distinct identities, encrypted once, spread over everybody: the
        # drain decrypts every row as it would for real people
        blobs = [
            (vault.encrypt(f"11010519800101{k:04d}"), vault.encrypt(f"居民{k}"))
            for k in range(1000)
        ]
        await conn.copy_records_to_table(
            "residents",
            columns=["id", "code", "id_type", "id_hash", "id_enc", "name_enc", "district_id"],
            records=(
                (
                    r,
                    f"B{r:015d}",
                    "prc_id",
                    hashlib.sha256(str(r).encode()).digest(),
                    *blobs[r % 1000],
                    1,
                )
                for r in range(1, 30 * tubes + 1)
            ),
        )
        await conn.copy_records_to_table(
            "samples",
            columns=["round_id", "tube_serial", "resident_id", "kind", "position", "sampled_at"],
            records=(
                (1, (r - 1) // 10 + 1, r, "pool", (r - 1) % 10 + 1, now)
                for r in range(1, 30 * tubes + 1)
            ),
        )
        await conn.execute("ALTER TABLE samples ENABLE TRIGGER feed_mark_samples")
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


async def upload(base: str, headers: dict[str, str], name: str, data: bytes) -> float:
    async with httpx.AsyncClient(timeout=3600) as client:
        t0 = time.perf_counter()
        r = await client.post(
            f"{base}/api/v1/labs/BL1/results",
            headers=headers,
            files={"file": (name, data, "text/csv")},
            data={"format": "lis-csv"},
        )
        took = time.perf_counter() - t0
    assert r.status_code == 200, r.text[:500]
    return took


async def without_tube_marks(conn: asyncpg.Connection) -> str:
    """Take the feed marks out of the tubes' update trigger (migration 0013 made the
    feed's, the counters' and the split counters' one function, each part headed by a
    comment naming the trigger it came from); the function as it was, to put back."""
    source: str = await conn.fetchval("SELECT pg_get_functiondef('tubes_updated'::regproc)")
    start = source.index("-- from feed_mark_tubes()")
    end = source.index("-- from progress_tubes_updated()")
    await conn.execute(source[:start] + source[end:])
    return source


async def measure(base: str, admin: dict[str, str], dsn: str, tubes: int) -> dict[str, float]:
    conn = await asyncpg.connect(dsn)
    try:
        whole = await without_tube_marks(conn)
        without = await upload(base, admin, "a.csv", lab_day(1, tubes))
        without_after = await upload(base, admin, "c.csv", lab_day(2 * tubes + 1, tubes))
        await conn.execute(whole)
        t0 = time.perf_counter()
        with_feed = await upload(base, admin, "b.csv", lab_day(tubes + 1, tubes))
        while await conn.fetchval("SELECT EXISTS (SELECT 1 FROM feed_marks)"):  # noqa: ASYNC110
            await asyncio.sleep(0.2)
        sequenced = time.perf_counter() - t0 - with_feed
        changes = await conn.fetchval("SELECT count(*) FROM feed_changes")

        async with httpx.AsyncClient(base_url=base + "/api/v1", timeout=600) as client:
            r = await client.post("/tokens", json={"role": "platform"}, headers=admin)
            platform = {"Authorization": f"Bearer {r.json()['token']}"}
            after, drained = "0", 0
            t0 = time.perf_counter()
            while True:
                r = await client.get(
                    "/feed/results", params={"after": after, "limit": PAGE}, headers=platform
                )
                page = r.json()
                if not page["items"]:
                    break
                drained += len(page["items"])
                after = page["next_cursor"]
            http_seconds = time.perf_counter() - t0

        fetched, last = 0, 0
        t0 = time.perf_counter()
        while True:
            rows = await conn.fetch(
                """
                SELECT f.*, p.id_type, p.id_enc, p.name_enc, t.barcode, l.code
                FROM feed_changes f JOIN residents p ON p.id = f.resident_id
                LEFT JOIN tubes t ON t.serial = f.tube_serial LEFT JOIN labs l ON l.id = f.lab_id
                WHERE f.seq > $1 ORDER BY f.seq LIMIT $2
                """,
                last,
                PAGE,
            )
            if not rows:
                break
            fetched += len(rows)
            last = rows[-1]["seq"]
        raw_seconds = time.perf_counter() - t0
    finally:
        await conn.close()
    return {
        "without": without,
        "without_after": without_after,
        "with": with_feed,
        "sequenced": sequenced,
        "changes": changes,
        "drained": drained,
        "http": http_seconds,
        "fetched": fetched,
        "raw": raw_seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tubes", type=int, default=210_000)
    args = parser.parse_args()
    key = secrets.token_hex(32)
    os.environ["SCREENING_SECRET_KEY"] = key
    tempfile.tempdir = tempfile.gettempdir()
    with running_service() as svc:
        dsn = asyncpg_dsn(svc.db_url)
        t0 = time.perf_counter()
        asyncio.run(seed(dsn, args.tubes, Vault.from_secret(bytes.fromhex(key))))
        print(
            f"seeded 3 x {args.tubes:,} tubes, {30 * args.tubes:,} people in"
            f" {time.perf_counter() - t0:.0f} s"
        )
        f = asyncio.run(measure(svc.base, svc.admin, dsn, args.tubes))
    off = (f["without"] + f["without_after"]) / 2
    print(f"lab-days A and C, feed writes off: {f['without']:.2f} s, {f['without_after']:.2f} s")
    print(
        f"lab-day B, feed writes on: {f['with']:.2f} s, ratio to the mean of A and C"
        f" {f['with'] / off:.2f} (goal <= 1.25)"
    )
    print(f"sequenced {f['changes']:,} changes {f['sequenced']:.1f} s after the upload answered")
    print(
        f"drain over HTTP, pages of {PAGE:,}: {f['drained']:,} items in {f['http']:.2f} s"
        f" ({f['drained'] / f['http']:,.0f}/s)"
    )
    print(
        f"raw asyncpg fetch, same pages: {f['fetched']:,} rows in {f['raw']:.2f} s"
        f" ({f['fetched'] / f['raw']:,.0f}/s)"
    )
    print(f"  ratio (raw / HTTP): {f['raw'] / f['http']:.2f} (goal >= 0.25)")


if __name__ == "__main__":
    main()
