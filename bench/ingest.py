"""A lab-day of results through the upload endpoint, against a raw COPY baseline.

    .venv/bin/python bench/ingest.py [--tubes 210000] [--format lis-csv|quantstudio]
        [--concurrency 2] [--bulk-mb 1000]

Seeds (through COPY, not the API) one lab, one round and ``--tubes`` tubes already
received by the lab, writes the lab-day's results, ~94 tubes and 2 controls a plate (the
usual 96-well layout): one lis-csv file, or one QuantStudio export per plate as the
instruments write them (``--concurrency`` at a time); uploads them to the running
service with httpx, and in the same run times a raw asyncpg ``copy_records_to_table``
of the same rows into an unindexed table of the same database. Reports both, their
ratio, and the server process's peak memory (RSS, children included) while ingesting.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import psutil
from service import asyncpg_dsn, running_service

from pooling.barcodes import format_barcode

ROWS, COLS = "ABCDEFGH", range(1, 13)
WELLS = [f"{r}{c}" for r in ROWS for c in COLS]


def plate_layout(tubes: int) -> list[tuple[str, str, str, str, str, str, str]]:
    """(plate, well, sample, role, ORF1ab, N, IC) rows, ~94 tubes and 2 controls a plate."""
    rng = random.Random(7)
    rows = []
    serial = 1
    plate_no = 0
    while serial <= tubes:
        plate_no += 1
        plate = f"P{plate_no:06d}"
        rows.append((plate, "A1", "NTC", "ntc", "", "", ""))
        rows.append((plate, "A2", "PC", "pc", "28.31", "29.02", "27.5"))
        for well in WELLS[2:]:
            if serial > tubes:
                break
            positive = rng.random() < 0.001
            orf, n = (
                (f"{rng.uniform(22, 36):.2f}", f"{rng.uniform(22, 36):.2f}")
                if positive
                else ("", "")
            )
            rows.append(
                (
                    plate,
                    well,
                    format_barcode(serial),
                    "sample",
                    orf,
                    n,
                    f"{rng.uniform(24, 30):.2f}",
                )
            )
            serial += 1
    return rows


def write_lis_csv(path: Path, rows: list[tuple[str, ...]]) -> None:
    with path.open("w") as fh:
        fh.write("plate,well,sample,role,ORF1ab,N,IC\n")
        for row in rows:
            fh.write(",".join(row) + "\n")


def write_quantstudio(folder: Path, rows: list[tuple[str, ...]]) -> list[Path]:
    """One QuantStudio results export per plate, as instruments write them."""
    by_plate: dict[str, list[tuple[str, ...]]] = {}
    for row in rows:
        by_plate.setdefault(row[0], []).append(row)
    paths = []
    for plate, plate_rows in by_plate.items():
        path = folder / f"{plate}.txt"
        with path.open("w") as fh:
            fh.write(
                f"* Experiment Barcode = {plate}\n* Experiment Name = LabDay\n"
                "* Block Type = 96-Well Block (0.2mL)\n\n[Results]\n"
                "Well\tWell Position\tOmit\tSample Name\tTarget Name\tTask\tReporter"
                "\tQuencher\tCT\tCt Mean\tCt SD\tQuantity\n"
            )
            for _plate, well, sample, role, orf, n, ic in plate_rows:
                task = {"ntc": "NTC", "pc": "STANDARD"}.get(role, "UNKNOWN")
                for target, dye, ct in (
                    ("ORF1ab", "FAM", orf),
                    ("N", "VIC", n),
                    ("IC", "CY5", ic),
                ):
                    fh.write(
                        f"1\t{well}\tfalse\t{sample}\t{target}\t{task}\t{dye}\tNFQ-MGB\t"
                        f"{ct or 'Undetermined'}\t\t\t\n"
                    )
        paths.append(path)
    return paths


def pad_lis_csv(path: Path, tubes: int, megabytes: int) -> int:
    """Append plates of barcodes never issued until the file holds ``megabytes``: a
    big file whose extra rows are all rejected (unknown tube). Returns rows added."""
    added = 0
    serial = tubes + 1
    plate_no = 10**6
    with path.open("a") as fh:
        while path.stat().st_size < megabytes * 1_000_000:
            lines = []
            for _ in range(2000):
                plate_no += 1
                for well in WELLS[2:]:
                    lines.append(f"X{plate_no},{well},{format_barcode(serial)},sample,,,26.10\n")
                    serial += 1
            fh.write("".join(lines))
            fh.flush()
            added += len(lines)
    return added


async def seed(dsn: str, tubes: int) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("""
            INSERT INTO districts (code, name, population) VALUES ('B1', '基准区', 1);
            INSERT INTO sampling_points (code, name, address, district_id, stations,
                                         people_per_hour_per_station)
                VALUES ('BP1', 'p', '', 1, 1, 60);
            INSERT INTO labs (code, name, daily_capacity_tubes, kit) VALUES ('BL1', 'lab',
                210000, '{"targets": ["ORF1ab", "N"], "control_target": "IC",
                "positive_ct_max": 40.0, "grey_ct_max": null, "control_ct_max": 40.0,
                "dyes": {"FAM": "ORF1ab", "VIC": "N", "CY5": "IC"}}');
            INSERT INTO rounds (name, pool_size, starts_at, deadline)
                VALUES ('bench', 10, now(), now() + interval '1 day');
        """)
        now = datetime.now(UTC)
        await conn.copy_records_to_table(
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
                "received_at",
                "lab_id",
            ],
            records=(
                (s, format_barcode(s), 1, 1, "pool", 10, 10, "received", now, 1)
                for s in range(1, tubes + 1)
            ),
        )
        await conn.execute("ANALYZE tubes")
    finally:
        await conn.close()


async def raw_copy(dsn: str, rows: list[tuple[str, ...]]) -> float:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            "CREATE TABLE bench_raw (plate text, well text, sample text,"
            " role text, orf1ab text, n text, ic text)"
        )
        t0 = time.perf_counter()
        await conn.copy_records_to_table("bench_raw", records=rows)
        return time.perf_counter() - t0
    finally:
        await conn.close()


def peak_rss_watcher(pid: int, stop: threading.Event, peak: list[int]) -> None:
    process = psutil.Process(pid)
    children = []
    while not stop.is_set():
        try:
            rss = process.memory_info().rss
            children = process.children(recursive=True)
            rss += sum(c.memory_info().rss for c in children)
        except psutil.Error:
            break
        peak[0] = max(peak[0], rss)
        time.sleep(0.05)


async def upload_all(
    base: str, headers: dict[str, str], paths: list[Path], fmt: str, concurrency: int
) -> list[dict[str, Any]]:
    """Upload every file, ``concurrency`` at a time, as a lab's uploader would."""
    queue = list(reversed(paths))
    answers: list[dict[str, Any]] = []

    async def worker(client: httpx.AsyncClient) -> None:
        while queue:
            path = queue.pop()
            with path.open("rb") as fh:
                response = await client.post(
                    f"{base}/api/v1/labs/BL1/results",
                    headers=headers,
                    files={"file": (path.name, fh)},
                    data={"format": fmt},
                    timeout=3600,
                )
            answers.append({"status": response.status_code, **response.json()})

    async with httpx.AsyncClient() as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    return answers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tubes", type=int, default=210_000)
    parser.add_argument("--format", choices=["lis-csv", "quantstudio"], default="lis-csv")
    parser.add_argument(
        "--concurrency", type=int, default=2, help="quantstudio: plate files uploaded at once"
    )
    parser.add_argument(
        "--bulk-mb",
        type=int,
        default=0,
        help="lis-csv: pad the file to this size with rows of unknown tubes (memory test)",
    )
    args = parser.parse_args()
    rows = plate_layout(args.tubes)
    folder = Path(tempfile.mkdtemp(prefix="screening-ingest-"))
    if args.format == "lis-csv":
        paths = [folder / "labday.csv"]
        write_lis_csv(paths[0], rows)
        padded = pad_lis_csv(paths[0], args.tubes, args.bulk_mb) if args.bulk_mb else 0
    else:
        paths, padded = write_quantstudio(folder, rows), 0
    size = sum(path.stat().st_size for path in paths)
    with running_service() as svc:
        dsn = asyncpg_dsn(svc.db_url)
        asyncio.run(seed(dsn, args.tubes))
        copy_seconds = asyncio.run(raw_copy(dsn, rows))
        stop, peak = threading.Event(), [0]
        watcher = threading.Thread(target=peak_rss_watcher, args=(svc.pid, stop, peak))
        base_rss = psutil.Process(svc.pid).memory_info().rss
        watcher.start()
        t0 = time.perf_counter()
        answers = asyncio.run(upload_all(svc.base, svc.admin, paths, args.format, args.concurrency))
        upload_seconds = time.perf_counter() - t0
        stop.set()
        watcher.join()
    statuses = sorted({a["status"] for a in answers})
    tubes: dict[str, int] = {}
    for answer in answers:
        for call, count in answer.get("tubes", {}).items():
            tubes[call] = tubes.get(call, 0) + count
    print(
        f"files: {len(paths)} {args.format}, {size / 1e6:.1f} MB, {len(rows)} wells,"
        f" {args.tubes} tubes" + (f", {padded} rows of unknown tubes" if padded else "")
    )
    print(
        f"status {statuses}: rows {sum(a.get('rows', 0) for a in answers)}, accepted"
        f" {sum(a.get('accepted', 0) for a in answers)}, rejected"
        f" {sum(a.get('rejected_total', 0) for a in answers)}, plates"
        f" {sum(len(a.get('plates', [])) for a in answers)}, tubes {tubes}"
    )
    print(f"raw asyncpg COPY of the same {len(rows)} rows: {copy_seconds:.2f} s")
    print(f"upload end to end over HTTP: {upload_seconds:.2f} s")
    print(f"  ratio (copy / upload): {copy_seconds / upload_seconds:.3f}")
    print(f"server RSS: {base_rss / 1e6:.0f} MB before, peak {peak[0] / 1e6:.0f} MB during")


if __name__ == "__main__":
    main()
