"""The newest de-pooling events of a round, for a screen that has just opened: it shows
them at once, then follows the live feed (``GET /events``) from ``last_id`` on, so
nothing falls between the list and the stream."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from screening.progress.schemas import RecentEvent, RecentEvents
from screening.rounds.service import get_round

# the newest id is read first, in the same statement: the list stops there and the
# stream starts after it
_RECENT = text("""
WITH top AS (SELECT coalesce(max(id), 0) AS last_id FROM retest_events)
SELECT top.last_id, e.id, e.kind, e.round_id, e.case_id, p.code AS sampling_point,
       r.code AS resident_code, e.from_status, e.to_status, e.at
FROM top
LEFT JOIN LATERAL (
    SELECT * FROM retest_events e
    WHERE e.round_id = :round_id AND e.id <= top.last_id
    ORDER BY e.id DESC LIMIT :limit
) e ON true
LEFT JOIN sampling_points p ON p.id = e.sampling_point_id
LEFT JOIN residents r ON r.id = e.resident_id
ORDER BY e.id DESC
""")


async def recent_events(session: AsyncSession, round_id: int, *, limit: int) -> RecentEvents:
    await get_round(session, round_id)
    rows = (await session.execute(_RECENT, {"round_id": round_id, "limit": limit})).all()
    return RecentEvents(
        last_id=rows[0].last_id if rows else 0,
        items=[
            RecentEvent(
                id=row.id,
                kind=row.kind,
                round_id=row.round_id,
                case_id=row.case_id,
                sampling_point=row.sampling_point,
                resident_code=row.resident_code,
                from_=row.from_status,
                to=row.to_status,
                at=row.at,
            )
            for row in rows
            if row.id is not None
        ],
    )
