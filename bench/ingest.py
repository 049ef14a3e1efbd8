"""A lab-day of results through the upload endpoint, against a raw COPY baseline.

    .venv/bin/python bench/ingest.py [--tubes 210000] [--format lis-csv|quantstudio]

Seeds (through COPY, not the API) one lab, one round and ``--tubes`` tubes already
received by the lab, writes one instrument file of ~94 tubes and 2 controls a plate
(the usual 96-well layout), uploads it to the running service with httpx, and in the
same run times a raw asyncpg ``copy_records_to_table`` of the same rows into an
unindexed table of the same database. Reports both, their ratio, and the server
process's peak memory (VmHWM) while ingesting.
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


def write_quantstudio(path: Path, rows: list[tuple[str, ...]]) -> None:
    with path.open("w") as fh:
        fh.write(
            "* Experiment Barcode = NA\n* Experiment Name = LabDay\n"
            "* Block Type = 96-Well Block (0.2mL)\n\n[Results]\n"
        )
        fh.write(
            "Well\tWell Position\tOmit\tSample Name\tTarget Name\tTask\tReporter\tQuencher"
            "\tCT\tCt Mean\tCt SD\tQuantity\n"
        )
        for _plate, well, sample, role, orf, n, ic in rows:
            task = {"ntc": "NTC", "pc": "STANDARD"}.get(role, "UNKNOWN")
            for target, dye, ct in (("ORF1ab", "FAM", orf), ("N", "VIC", n), ("IC", "CY5", ic)):
                fh.write(
                    f"1\t{well}\tfalse\t{sample}\t{target}\t{task}\t{dye}\tNFQ-MGB\t"
                    f"{ct or 'Undetermined'}\t\t\t\n"
                )


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tubes", type=int, default=210_000)
    parser.add_argument("--format", choices=["lis-csv", "quantstudio"], default="lis-csv")
    args = parser.parse_args()
    rows = plate_layout(args.tubes)
    folder = Path(tempfile.mkdtemp(prefix="screening-ingest-"))
    path = folder / ("labday.csv" if args.format == "lis-csv" else "labday.txt")
    (write_lis_csv if args.format == "lis-csv" else write_quantstudio)(path, rows)
    size = path.stat().st_size
    with running_service() as svc:
        dsn = asyncpg_dsn(svc.db_url)
        asyncio.run(seed(dsn, args.tubes))
        copy_seconds = asyncio.run(raw_copy(dsn, rows))
        stop, peak = threading.Event(), [0]
        watcher = threading.Thread(target=peak_rss_watcher, args=(svc.pid, stop, peak))
        base_rss = psutil.Process(svc.pid).memory_info().rss
        watcher.start()
        t0 = time.perf_counter()
        with path.open("rb") as fh:
            response = httpx.post(
                f"{svc.base}/api/v1/labs/BL1/results",
                headers=svc.admin,
                files={"file": (path.name, fh)},
                data={"format": args.format},
                timeout=3600,
            )
        upload_seconds = time.perf_counter() - t0
        stop.set()
        watcher.join()
        summary = response.json()
    print(f"file: {args.format}, {size / 1e6:.1f} MB, {len(rows)} wells, {args.tubes} tubes")
    print(
        f"status {response.status_code}: rows {summary.get('rows')}, accepted "
        f"{summary.get('accepted')}, rejected {summary.get('rejected_total')}, "
        f"plates {len(summary.get('plates', []))}, tubes {summary.get('tubes')}"
    )
    print(f"raw asyncpg COPY of the same {len(rows)} rows: {copy_seconds:.2f} s")
    print(f"upload end to end over HTTP: {upload_seconds:.2f} s")
    print(f"  ratio (copy / upload): {copy_seconds / upload_seconds:.2f}")
    print(f"server RSS: {base_rss / 1e6:.0f} MB before, peak {peak[0] / 1e6:.0f} MB during")


if __name__ == "__main__":
    main()
