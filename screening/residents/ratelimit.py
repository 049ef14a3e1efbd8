"""Failed resident queries per client: the brake on guessing ID numbers (API.md).

The limit must hold across every worker process (and every app server of a fleet), so
the count lives outside the process: by default in PostgreSQL (the database every
process already shares, embedded or not: no extra server to run), or in any storage of
the ``limits`` package named by ``SCREENING_RATE_LIMIT_STORAGE`` (``async+redis://host``
for a fleet that runs Redis; ``async+memory://`` keeps it per process, for tests).

Clients are keyed by a hash of their address (the real one: uvicorn takes it from
``X-Forwarded-For`` only when ``--forwarded-allow-ips`` names the proxy), so no
address is stored.
"""

from __future__ import annotations

import hashlib
import math
import time
from typing import Any, Protocol

from limits import RateLimitItemPerMinute
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from screening.db import Db, driver_connection
from screening.errors import TooManyRequests

POSTGRESQL = "postgresql"
WINDOW_SECONDS = 60


class FailureLimiter(Protocol):
    async def retry_after(self, client: str, db: Db | None = None) -> int | None:
        """Seconds to wait when ``client`` has used up its failures, else None (on
        ``db``, the request's connection, when the count is in the database: a
        request never holds one pooled connection while waiting for a second)."""

    async def record_failure(self, client: str) -> None: ...


async def admit(limiter: FailureLimiter, client: str, db: Db | None = None) -> None:
    """Refuse (429, Retry-After) a client that has used up its failures."""
    wait = await limiter.retry_after(client, db)
    if wait is not None:
        raise TooManyRequests("尝试次数过多，请稍后再试。", retry_after=wait)


def client_key(client: str) -> str:
    return hashlib.sha256(b"query-failures:" + client.encode()).hexdigest()[:32]


# the newest failure that would be the limit-th in the window: while it is in the
# window, the client waits until it leaves
# $1 client key, $2 window seconds, $3 the limit less one
BLOCKING = """
SELECT extract(epoch FROM at + make_interval(secs => $2::integer) - clock_timestamp())
FROM query_failures
WHERE client_key = $1 AND at > clock_timestamp() - make_interval(secs => $2::integer)
ORDER BY at DESC
OFFSET $3 LIMIT 1
"""
_RECORD = text("INSERT INTO query_failures (client_key) VALUES (:key)")
_FORGET = text(
    "DELETE FROM query_failures WHERE at < clock_timestamp() - make_interval(secs => :window)"
)


class PostgresFailureLimiter:
    """A moving one-minute window in the ``query_failures`` table (unlogged: a crash
    forgets the last minute's failures, nothing else)."""

    def __init__(self, engine: AsyncEngine, per_minute: int) -> None:
        self.engine = engine
        self.per_minute = per_minute

    async def retry_after(self, client: str, db: Db | None = None) -> int | None:
        # on the driver connection, outside a transaction: one round trip, not three
        if db is not None:
            seconds = await self._blocking(await driver_connection(db), client)
        else:
            async with self.engine.connect() as conn:
                seconds = await self._blocking(await driver_connection(conn), client)
        return None if seconds is None else max(1, math.ceil(float(seconds)))

    async def _blocking(self, raw: Any, client: str) -> Any:
        return await raw.fetchval(BLOCKING, client_key(client), WINDOW_SECONDS, self.per_minute - 1)

    async def record_failure(self, client: str) -> None:
        # its own transaction: the request's is rolled back with the 404 it answers
        async with self.engine.begin() as conn:
            await conn.execute(_RECORD, {"key": client_key(client)})


class LimitsFailureLimiter:
    """The same window in a ``limits`` storage (Redis for a fleet, memory for tests)."""

    def __init__(self, storage_uri: str, per_minute: int) -> None:
        self.item = RateLimitItemPerMinute(per_minute)
        self.limiter = MovingWindowRateLimiter(storage_from_string(storage_uri))

    async def retry_after(self, client: str, db: Db | None = None) -> int | None:
        key = client_key(client)
        if await self.limiter.test(self.item, key):
            return None
        reset_at, _ = await self.limiter.get_window_stats(self.item, key)
        return max(1, math.ceil(reset_at - time.time()))

    async def record_failure(self, client: str) -> None:
        await self.limiter.hit(self.item, client_key(client))


def make_failure_limiter(storage: str, engine: AsyncEngine, per_minute: int) -> FailureLimiter:
    if storage == POSTGRESQL:
        return PostgresFailureLimiter(engine, per_minute)
    return LimitsFailureLimiter(storage, per_minute)


async def forget_old_failures(conn: AsyncConnection) -> None:
    """Drop failures that left the window (the background sweep's leader calls this)."""
    await conn.execute(_FORGET, {"window": WINDOW_SECONDS})
