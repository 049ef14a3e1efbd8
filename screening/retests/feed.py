"""The live feed of de-pooling (``GET /events``, Server-Sent Events).

Streams ``retest_events`` in ``id`` order: each event's SSE ``id`` is the row id, so a
client that reconnects with ``Last-Event-ID`` (browsers do it by themselves) misses
nothing and gets nothing twice. The stream polls the table every
``events_poll_seconds`` with a short session of its own (the request's session is
gone once streaming starts), flags overdue members and cases on the way (once each,
whoever's stream sees them first), and sends a comment every 15 s to keep proxies from
closing an idle connection.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import anyio
import orjson
from fastapi import Request
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from screening.config import Settings
from screening.retests.service import flag_overdue
from screening.tokens.service import Principal

KEEPALIVE_SECONDS = 15.0
BATCH = 500

_EVENTS = text("""
SELECT e.id, e.kind, e.round_id, e.case_id, p.code AS sampling_point, r.code AS resident_code,
       e.from_status, e.to_status, e.at
FROM retest_events e
JOIN sampling_points p ON p.id = e.sampling_point_id
LEFT JOIN residents r ON r.id = e.resident_id
WHERE e.id > :after
  AND (CAST(:point AS int) IS NULL OR e.sampling_point_id = :point)
  AND (CAST(:round_id AS int) IS NULL OR e.round_id = :round_id)
ORDER BY e.id
LIMIT :limit
""")


def format_event(row: Any) -> bytes:
    data = {
        "id": row.id,
        "kind": row.kind,
        "round_id": row.round_id,
        "case_id": row.case_id,
        "sampling_point": row.sampling_point,
        "resident_code": row.resident_code,
        "from": row.from_status,
        "to": row.to_status,
        "at": row.at.isoformat(),
    }
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (row.id, row.kind.encode(), orjson.dumps(data))


async def start_after(sessionmaker: async_sessionmaker[AsyncSession], after: int | None) -> int:
    """Where a new stream starts: after ``after`` when given, else after the newest
    event (a fresh screen wants what happens from now on)."""
    if after is not None:
        return after
    async with sessionmaker() as session:
        return int(await session.scalar(text("SELECT coalesce(max(id), 0) FROM retest_events")))


async def stream(
    request: Request,
    principal: Principal,
    *,
    after: int,
    round_id: int | None,
    limit: int | None,
    max_seconds: float | None,
) -> AsyncIterator[bytes]:
    """SSE frames until the client goes, or ``limit`` events / ``max_seconds`` passed."""
    settings: Settings = request.app.state.settings
    sessionmaker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    point = principal.sampling_point_id if principal.role == "sampler" else None
    started = last_sent = time.monotonic()
    sent = 0
    yield b"retry: 3000\n\n"
    while True:
        async with sessionmaker() as session:
            await flag_overdue(session, settings)
            await session.commit()
            rows = (
                await session.execute(
                    _EVENTS,
                    {
                        "after": after,
                        "point": point,
                        "round_id": round_id,
                        "limit": BATCH if limit is None else min(BATCH, limit - sent),
                    },
                )
            ).all()
        for row in rows:
            yield format_event(row)
            after = row.id
            sent += 1
            last_sent = time.monotonic()
        now = time.monotonic()
        if (limit is not None and sent >= limit) or (
            max_seconds is not None and now - started >= max_seconds
        ):
            return
        if len(rows) == BATCH:
            continue
        if now - last_sent >= KEEPALIVE_SECONDS:
            yield b": keep-alive\n\n"
            last_sent = now
        if await request.is_disconnected():
            return
        await anyio.sleep(settings.events_poll_seconds)
