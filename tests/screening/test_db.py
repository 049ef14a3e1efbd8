"""The database layer: migrations, the embedded server, the transaction per request."""

from __future__ import annotations

import secrets

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from screening.db import (
    downgrade,
    drop_database,
    ensure_database,
    migrate,
    ping_when_idle,
    raw_connection,
    with_database,
)


class TestMigrations:
    async def test_the_schema_migrates_down_and_up_again(self, server_url):
        name = f"screening_mig_{secrets.token_hex(3)}"
        await ensure_database(server_url, name)
        engine = create_async_engine(with_database(server_url, name))
        try:
            async with engine.begin() as conn:
                await migrate(conn)
                await downgrade(conn, "base")
                tables = await conn.scalar(
                    text(
                        "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
                        " AND tablename <> 'alembic_version'"
                    )
                )
                assert tables == 0
                await migrate(conn)
                assert await conn.scalar(text("SELECT count(*) FROM tubes")) == 0
        finally:
            await engine.dispose()
            await drop_database(server_url, name)


class TestCopyInsideTheRequestTransaction:
    async def test_a_copy_through_raw_connection_rolls_back_with_the_session(self, engine):
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE IF NOT EXISTS copy_probe (n int)"))
        try:
            async with AsyncSession(engine) as session:
                raw = await raw_connection(session)
                await raw.copy_records_to_table("copy_probe", records=[(1,), (2,)])
                await session.rollback()
            async with engine.connect() as conn:
                assert await conn.scalar(text("SELECT count(*) FROM copy_probe")) == 0
        finally:
            async with engine.begin() as conn:
                await conn.execute(text("DROP TABLE copy_probe"))


class TestRequestTransaction:
    async def test_a_failure_half_way_leaves_nothing_behind(
        self, committed_client, engine, make_scene
    ):
        scene = await make_scene(committed_client).build(residents=2)
        tube = scene.barcodes["P1"][0]
        await scene.fill(tube, range(1))
        # the second scan of the same person increments the count, then fails on the
        # member check: the increment must be rolled back with it
        r = await scene.sample(tube, scene.codes[0])
        assert r.status_code == 409
        async with engine.connect() as conn:
            count = await conn.scalar(
                text("SELECT count FROM tubes WHERE barcode = :b"), {"b": tube}
            )
        assert count == 1


class TestEmbeddedServer:
    async def test_with_no_url_an_embedded_server_starts_in_the_data_folder(self, tmp_path):
        from screening.config import Settings
        from screening.db import resolve_database_url, stop_embedded_server

        url = await resolve_database_url(Settings(data_dir=tmp_path, database_url=None))
        try:
            engine = create_async_engine(url)
            async with engine.connect() as conn:
                assert await conn.scalar(text("SELECT current_database()")) == "screening"
                # a census import's WAL must neither stall commits at each new WAL
                # file nor set off a checkpoint half way (screening.db.WAL_SETTINGS)
                for name, value in {
                    "wal_init_zero": "off",
                    "min_wal_size": "1GB",
                    "max_wal_size": "4GB",
                    "checkpoint_timeout": "30min",
                }.items():
                    assert await conn.scalar(text(f"SHOW {name}")) == value, name
            await engine.dispose()
            assert (tmp_path / "pg" / "PG_VERSION").exists()
        finally:
            stop_embedded_server()
        assert not (tmp_path / "pg" / "postmaster.pid").exists()


class TestPingOnlyWhenIdle:
    """No ping on every checkout (three round trips on asyncpg), but a connection that
    sat idle is checked before use and replaced when the server dropped it."""

    async def _drop_pooled_connection(self, engine, database_url):
        async with engine.connect() as conn:
            pid = await conn.scalar(text("SELECT pg_backend_pid()"))
        killer = create_async_engine(database_url)
        try:
            async with killer.connect() as conn:
                await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        finally:
            await killer.dispose()

    async def test_an_idle_connection_the_server_dropped_is_replaced(self, database_url):
        engine = create_async_engine(database_url, pool_size=1, max_overflow=0)
        ping_when_idle(engine, idle_seconds=0.0)
        try:
            await self._drop_pooled_connection(engine, database_url)
            async with engine.connect() as conn:
                assert await conn.scalar(text("SELECT 1")) == 1
        finally:
            await engine.dispose()

    async def test_without_the_ping_the_dropped_connection_fails_its_request(self, database_url):
        engine = create_async_engine(database_url, pool_size=1, max_overflow=0)
        ping_when_idle(engine, idle_seconds=3600.0)  # not idle long enough to be pinged
        try:
            await self._drop_pooled_connection(engine, database_url)
            with pytest.raises(DBAPIError):
                async with engine.connect() as conn:
                    await conn.scalar(text("SELECT 1"))
            async with engine.connect() as conn:  # the pool replaced it after the failure
                assert await conn.scalar(text("SELECT 1")) == 1
        finally:
            await engine.dispose()
