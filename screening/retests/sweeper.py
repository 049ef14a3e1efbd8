"""The background sweep: overdue de-pool members and cases are flagged here, by one
process among all that serve (never by a read), every ``overdue_sweep_seconds``.

Leadership is a PostgreSQL session-level advisory lock held on one connection: the
process that takes it sweeps until it stops; if it dies its connection closes, the lock
goes with it, and another process takes it at its next try. Through PgBouncer in
transaction mode (``SCREENING_DATABASE_POOLER``) a session lock would stay with a
pooled server connection, so there each sweep takes a transaction-level lock instead:
one sweep at a time, by whichever process comes first. The sweep also drops failed
resident queries that left their one-minute window.
"""

from __future__ import annotations

import logging
import os

import anyio
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from screening.config import Settings
from screening.residents.ratelimit import forget_old_failures
from screening.retests.service import flag_overdue

log = logging.getLogger(__name__)

# pg_advisory_lock key: "screening overdue sweep", any constant no other code uses
SWEEP_LOCK = 0x5C4EE9_0001


async def sweep(conn: AsyncConnection, settings: Settings) -> None:
    """One sweep, inside the caller's transaction."""
    await flag_overdue(conn, settings)
    await forget_old_failures(conn)


async def _lead_while_possible(engine: AsyncEngine, settings: Settings) -> None:
    async with engine.connect() as conn:
        leader = await conn.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": SWEEP_LOCK})
        await conn.commit()
        if not leader:
            return
        log.info("overdue sweep: this process leads", extra={"pid": os.getpid()})
        try:
            while True:
                async with conn.begin():
                    await sweep(conn, settings)
                await anyio.sleep(settings.overdue_sweep_seconds)
        except BaseException:
            # closing the connection (not returning it to the pool) is what releases
            # the lock, so that another process can lead
            await conn.invalidate()
            raise


async def _sweep_if_first(engine: AsyncEngine, settings: Settings) -> None:
    async with engine.begin() as conn:
        if await conn.scalar(text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": SWEEP_LOCK}):
            await sweep(conn, settings)


async def run_sweeper(engine: AsyncEngine, settings: Settings) -> None:
    """Try to lead every ``overdue_sweep_seconds``; sweep while leading. Runs until
    cancelled (the app's lifespan)."""
    attempt = _sweep_if_first if settings.database_pooler else _lead_while_possible
    while True:
        try:
            await attempt(engine, settings)
        except Exception as exc:
            log.warning("overdue sweep failed: %s", type(exc).__name__)
        await anyio.sleep(settings.overdue_sweep_seconds)
