"""The embedded PostgreSQL (no SCREENING_DATABASE_URL) across a kill -9 (issue 16,
Smaller): a service killed and restarted at once, then stopped gracefully, stops the
database too. The killed process is left unreaped on purpose, as a supervisor that has
not called wait() yet leaves it: a zombie whose pid still exists."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import psutil


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(data_dir: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if k != "SCREENING_DATABASE_URL"}
    env |= {"SCREENING_DATA_DIR": str(data_dir), "SCREENING_ADMIN_TOKEN": "embedded-test"}
    with log.open("a") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "screening.cli", "serve", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


async def until_healthy(port: int, log: Path) -> None:
    async with httpx.AsyncClient(timeout=1) as client:
        for _ in range(600):
            try:
                if (await client.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.2)
    raise AssertionError(await asyncio.to_thread(log.read_text))


def postmaster(pgdata: Path) -> psutil.Process | None:
    pid_file = pgdata / "postmaster.pid"
    if not pid_file.exists():
        return None
    pid = int(pid_file.read_text().split()[0])
    return psutil.Process(pid) if psutil.pid_exists(pid) else None


async def test_a_graceful_stop_after_a_kill_and_quick_restart_stops_the_database(tmp_path):
    log = tmp_path / "server.log"
    pgdata = tmp_path / "pg"
    port = free_port()
    first = start(tmp_path, port, log)
    second: subprocess.Popen[bytes] | None = None
    try:
        await until_healthy(port, log)
        database = postmaster(pgdata)
        assert database is not None
        os.kill(first.pid, signal.SIGKILL)
        for _ in range(100):  # dead, but not reaped: nobody has called wait()
            if psutil.Process(first.pid).status() == psutil.STATUS_ZOMBIE:
                break
            await asyncio.sleep(0.05)
        assert psutil.pid_exists(first.pid)
        second = start(tmp_path, port, log)
        await until_healthy(port, log)
        users = json.loads((pgdata / ".handle_pids.json").read_text())
        assert users == [second.pid]  # the zombie no longer counts as a user
        second.send_signal(signal.SIGTERM)
        # uvicorn ends by re-raising the signal once shut down
        assert await asyncio.to_thread(second.wait, 60) in (0, -signal.SIGTERM)
        await asyncio.to_thread(database.wait, 30)  # raises if it is still running
        assert not (pgdata / "postmaster.pid").exists()
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.kill()
            if process is not None:
                process.wait()
        leftover = postmaster(pgdata)
        if leftover is not None:
            leftover.kill()
