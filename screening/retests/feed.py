"""The live feed of de-pooling (``GET /events``, Server-Sent Events by sse-starlette).

Streams ``retest_events`` in ``id`` order: each event's SSE ``id`` is the row id, so a
client that reconnects with ``Last-Event-ID`` (browsers do it by themselves) misses
nothing and gets nothing twice.

One poller per process (:class:`EventHub`) reads new events every
``events_poll_seconds`` and keeps the latest few thousand in memory; every listener of
the process is served from there, so 500 listeners cost what one does (one query a
second), not 500 queries a second. A listener resuming from further back than the hub
holds reads its backlog from the database first. The poller runs while anyone listens.
Nothing here writes: overdue flags come from the background sweep
(screening.retests.sweeper). sse-starlette sends a comment every 15 s to keep proxies
from closing an idle connection, and notices a client that went away.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sse_starlette import ServerSentEvent

from screening.metrics import FEED_LISTENERS
from screening.tokens.service import Principal

log = logging.getLogger(__name__)

BATCH = 500
KEEP = 5_000
RETRY_MS = 3000
KEEPALIVE_SECONDS = 15
SEP = "\n"

_EVENTS = text("""
SELECT e.id, e.kind, e.round_id, e.case_id, e.sampling_point_id,
       p.code AS sampling_point, r.code AS resident_code, e.from_status, e.to_status, e.at
FROM retest_events e
JOIN sampling_points p ON p.id = e.sampling_point_id
LEFT JOIN residents r ON r.id = e.resident_id
WHERE e.id > :after
  AND (CAST(:point AS int) IS NULL OR e.sampling_point_id = :point)
  AND (CAST(:round_id AS int) IS NULL OR e.round_id = :round_id)
ORDER BY e.id
LIMIT :limit
""")
_LATEST = text("SELECT coalesce(max(id), 0) FROM retest_events")


@dataclass(frozen=True, slots=True)
class FeedEvent:
    """An event as every listener sends it (encoded once), with what filters it."""

    id: int
    round_id: int
    sampling_point_id: int
    message: ServerSentEvent

    @classmethod
    def of(cls, row: Any) -> FeedEvent:
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
        message = ServerSentEvent(
            data=orjson.dumps(data).decode(), event=row.kind, id=str(row.id), sep=SEP
        )
        return cls(row.id, row.round_id, row.sampling_point_id, message)

    def shown_to(self, point: int | None, round_id: int | None) -> bool:
        return (point is None or self.sampling_point_id == point) and (
            round_id is None or self.round_id == round_id
        )


async def read_events(
    conn: AsyncConnection,
    after: int,
    *,
    point: int | None = None,
    round_id: int | None = None,
    limit: int = BATCH,
) -> list[FeedEvent]:
    params = {"after": after, "point": point, "round_id": round_id, "limit": limit}
    rows = (await conn.execute(_EVENTS, params)).all()
    await conn.rollback()  # never idle in a transaction between polls
    return [FeedEvent.of(row) for row in rows]


async def start_after(engine: AsyncEngine, after: int | None) -> int:
    """Where a new stream starts: after ``after`` when given, else after the newest
    event (a fresh screen wants what happens from now on)."""
    if after is not None:
        return after
    async with engine.connect() as conn:
        return int(await conn.scalar(_LATEST) or 0)


class EventHub:
    """The process's one poller and its window of recent events.

    ``floor``: every event with an id above it, up to ``latest``, is in the window
    (None until the poller's first look).
    """

    def __init__(self, engine: AsyncEngine, poll_seconds: float):
        self.engine = engine
        self.poll_seconds = poll_seconds
        self.floor: int | None = None
        self.latest = 0
        self.arrived = asyncio.Event()
        self._events: list[FeedEvent] = []
        self._listeners = 0
        self._poller: asyncio.Task[None] | None = None

    @contextmanager
    def listening(self) -> Iterator[None]:
        self._listeners += 1
        FEED_LISTENERS.inc()
        if self._poller is None or self._poller.done():
            self._poller = asyncio.create_task(self._poll())
        try:
            yield
        finally:
            self._listeners -= 1
            FEED_LISTENERS.dec()

    async def close(self) -> None:
        """Stop polling (the app is shutting down)."""
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller

    def since(self, after: int) -> list[FeedEvent]:
        """Held events after ``after`` (which must be at or above ``floor``)."""
        return self._events[bisect.bisect_right(self._events, after, key=lambda e: e.id) :]

    def _announce(self) -> None:
        self.arrived.set()
        self.arrived = asyncio.Event()

    async def _poll(self) -> None:
        # a window from an earlier run has a gap since: start afresh
        self.floor, self._events = None, []
        while self._listeners > 0:
            try:
                async with self.engine.connect() as conn:  # held while anyone listens
                    await self._poll_on(conn)
            except Exception as exc:  # the database is away: listeners wait, we retry
                log.warning("live feed poll failed: %s", type(exc).__name__)
                await asyncio.sleep(self.poll_seconds)

    async def _poll_on(self, conn: AsyncConnection) -> None:
        if self.floor is None:
            self.latest = int(await conn.scalar(_LATEST) or 0)
            await conn.rollback()
            self.floor = self.latest
            self._announce()
        while self._listeners > 0:
            fresh = await read_events(conn, self.latest)
            if fresh:
                self._events += fresh
                self.latest = fresh[-1].id
                if len(self._events) > 2 * KEEP:
                    self.floor = self._events[-KEEP - 1].id
                    self._events = self._events[-KEEP:]
                self._announce()
            if len(fresh) < BATCH:
                await asyncio.sleep(self.poll_seconds)


async def stream(
    hub: EventHub,
    principal: Principal,
    *,
    after: int,
    round_id: int | None,
    limit: int | None,
    max_seconds: float | None,
) -> AsyncIterator[ServerSentEvent]:
    """Events until the client goes, or ``limit`` events / ``max_seconds`` passed."""
    point = principal.sampling_point_id if principal.role == "sampler" else None
    deadline = None if max_seconds is None else time.monotonic() + max_seconds
    sent = 0
    yield ServerSentEvent(comment="live", retry=RETRY_MS, sep=SEP)
    with hub.listening():
        while True:
            signal = hub.arrived
            floor = hub.floor
            batch: list[FeedEvent] = []
            reached = after
            if floor is not None and after >= floor:
                batch = [e for e in hub.since(after) if e.shown_to(point, round_id)]
                reached = hub.latest
            elif floor is not None:  # further back than the hub holds: the database
                async with hub.engine.connect() as conn:
                    batch = await read_events(conn, after, point=point, round_id=round_id)
                # a short batch read everything there was, so everything up to floor
                reached = max(batch[-1].id if batch else after, floor if len(batch) < BATCH else 0)
            for event in batch:
                yield event.message
                sent += 1
                if limit is not None and sent >= limit:
                    return
            progressed, after = reached > after, max(after, reached)
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return
            if progressed:
                continue
            try:
                await asyncio.wait_for(signal.wait(), remaining)
            except TimeoutError:
                return
