"""What live-feed listeners cost the running service (issue 15): server CPU and
database transactions a second with 0, 1 and N listeners on ``GET /events``.

    .venv/bin/python bench/feed.py --listeners 500 --seconds 20
    .venv/bin/python bench/feed.py --source /tmp/old   # an older checkout, same figures

``--source`` serves the code of another checkout (``git archive REV screening pooling
lab_io reports | tar -x -C DIR``), run from that folder so its packages come first on
the served process's import path: to compare with the feed before it shared one poller
per process.
Listeners are bare asyncio sockets that read and discard, so the client costs little;
it still runs on the same machine. Database load is counted from
``pg_stat_database`` (committed + rolled-back transactions of the benchmark's own
database): every poll is one short transaction.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import psutil

sys.path.insert(0, str(Path(__file__).parent))

from service import Service, asyncpg_dsn, running_service


@dataclass
class Figures:
    listeners: int
    cpu_percent: float  # of one core, the server's processes together
    xacts_per_second: float
    open_streams: int


async def listen(host: str, port: int, token: str, alive: list[int]) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(
        f"GET /api/v1/events HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
        "Accept: text/event-stream\r\n\r\n".encode()
    )
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(head.decode(errors="replace"))
    alive[0] += 1
    try:
        while await reader.read(65536):
            pass
    finally:
        alive[0] -= 1
        writer.close()


async def xacts(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(
            await conn.fetchval(
                "SELECT xact_commit + xact_rollback FROM pg_stat_database"
                " WHERE datname = current_database()"
            )
        )
    finally:
        await conn.close()


def cpu_seconds(pid: int) -> float:
    root = psutil.Process(pid)
    total = 0.0
    for proc in [root, *root.children(recursive=True)]:
        try:
            times = proc.cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return total


async def measure(service: Service, listeners: int, seconds: float) -> Figures:
    parts = urlsplit(service.base)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    token = service.admin["Authorization"].split()[1]
    dsn = asyncpg_dsn(service.db_url)
    alive = [0]
    tasks = [asyncio.create_task(listen(host, port, token, alive)) for _ in range(listeners)]
    try:
        for _ in range(600):
            if alive[0] == listeners:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(3)  # let connecting settle
        cpu0, x0, t0 = cpu_seconds(service.pid), await xacts(dsn), time.monotonic()
        await asyncio.sleep(seconds)
        cpu1, x1, t1 = cpu_seconds(service.pid), await xacts(dsn), time.monotonic()
        open_streams = alive[0]
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    # the two pg_stat_database reads are transactions of their own
    return Figures(
        listeners,
        100 * (cpu1 - cpu0) / (t1 - t0),
        (x1 - x0 - 1) / (t1 - t0),
        open_streams,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--listeners", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--source", type=Path, help="serve this checkout's code instead")
    args = parser.parse_args()
    os.environ["SCREENING_WORKERS"] = str(args.workers)
    os.environ.setdefault("SCREENING_EVENTS_POLL_SECONDS", "1")
    if args.source:
        os.chdir(args.source)  # `python -m screening.cli` imports from the working folder
    with running_service() as service:
        rows = [asyncio.run(measure(service, n, args.seconds)) for n in (0, 1, args.listeners)]
    label = f"source {args.source}" if args.source else "this checkout"
    print(f"{label}, {args.workers} worker(s), {args.seconds:.0f} s a step")
    print("| listeners | streams open | server CPU (% of a core) | DB transactions/s |")
    print("|---|---|---|---|")
    for row in rows:
        print(
            f"| {row.listeners} | {row.open_streams} | {row.cpu_percent:.1f} |"
            f" {row.xacts_per_second:.1f} |"
        )


if __name__ == "__main__":
    main()
