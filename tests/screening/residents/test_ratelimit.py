"""The resident-query failure counter in PostgreSQL: a moving minute per client, kept
without the address, old failures dropped by the background sweep (the limit across
running workers is tested in tests/screening/test_processes.py)."""

from __future__ import annotations

from sqlalchemy import text

from screening.residents.ratelimit import PostgresFailureLimiter
from screening.retests.sweeper import sweep


async def test_failures_are_counted_per_client_for_a_minute_then_forgotten(engine, settings):
    limiter = PostgresFailureLimiter(engine, per_minute=3)
    try:
        for _ in range(3):
            assert await limiter.retry_after("198.51.100.1") is None
            await limiter.record_failure("198.51.100.1")
        wait = await limiter.retry_after("198.51.100.1")
        assert wait is not None and 1 <= wait <= 60
        assert await limiter.retry_after("198.51.100.2") is None
        async with engine.begin() as conn:
            keys = (await conn.execute(text("SELECT client_key FROM query_failures"))).scalars()
            assert "198.51.100.1" not in " ".join(keys)
            await conn.execute(text("UPDATE query_failures SET at = at - interval '61 s'"))
        assert await limiter.retry_after("198.51.100.1") is None  # the minute has passed
        async with engine.begin() as conn:
            await sweep(conn, settings)
            assert await conn.scalar(text("SELECT count(*) FROM query_failures")) == 0
    finally:
        async with engine.begin() as conn:
            await conn.execute(text("DELETE FROM query_failures"))
