"""The sampling points of a round with their pace, laggards first, a page at a time
(a city has thousands of points; the cost grows with points, never with samples)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from screening.config import Settings
from screening.progress.pace import lag_order, point_pace, sampling_window
from screening.progress.schemas import PointPace, PointPacePage
from screening.progress.service import LATE_BOXES
from screening.rounds.service import get_round
from screening.schemas import parse_cursor

_POINTS = text("""
WITH c AS (
    SELECT sampling_point_id, sum(people)::bigint AS people, sum(registered)::bigint AS samples,
           sum(open + sealed)::bigint AS unshipped
    FROM progress_counts WHERE round_id = :round_id GROUP BY 1
)
SELECT p.id, p.code, p.name, d.code AS district, d.population,
       p.stations * p.people_per_hour_per_station AS hourly,
       sum(p.stations * p.people_per_hour_per_station) OVER (PARTITION BY p.district_id)
           AS district_hourly,
       coalesce(c.people, 0) AS people, coalesce(c.samples, 0) AS samples,
       coalesce(c.unshipped, 0) AS unshipped
FROM sampling_points p
JOIN round_districts rd ON rd.district_id = p.district_id AND rd.round_id = :round_id
JOIN districts d ON d.id = p.district_id
LEFT JOIN c ON c.sampling_point_id = p.id
""")


async def points_by_pace(
    session: AsyncSession,
    settings: Settings,
    round_id: int,
    *,
    order: str = "lag",
    limit: int = 20,
    cursor: str | None = None,
    now: datetime | None = None,
) -> PointPacePage:
    """One page of the round's points, laggards first (``order="lag"``) or by code;
    the cursor is the number of points already shown."""
    rnd = await get_round(session, round_id)
    now = now or datetime.now(UTC)
    window = sampling_window((rnd.deadline - rnd.starts_at).total_seconds() / 3600)
    elapsed = (now - rnd.starts_at).total_seconds() / 3600
    late: dict[int, int] = {}  # a point may have late boxes to several labs
    for row in (
        await session.execute(
            LATE_BOXES, {"round_id": round_id, "late_secs": settings.box_late_minutes * 60}
        )
    ).all():
        late[row.sampling_point_id] = late.get(row.sampling_point_id, 0) + row.n
    items: list[tuple[tuple[int, float, str], PointPace]] = []
    for row in (await session.execute(_POINTS, {"round_id": round_id})).all():
        boxes_late = late.get(row.id, 0)
        pace = point_pace(
            people=row.people,
            district_population=row.population,
            point_hourly=row.hourly,
            district_hourly=int(row.district_hourly),
            elapsed_hours=elapsed,
            window_hours=window,
            boxes_late=boxes_late,
        )
        item = PointPace(
            sampling_point=row.code,
            name=row.name,
            district=row.district,
            registered=row.people,
            samples=row.samples,
            unshipped_tubes=row.unshipped,
            boxes_late=boxes_late,
            target=pace.target,
            expected=pace.expected,
            pace=pace.pace,
            lagging=pace.lagging,
        )
        key = lag_order(pace, row.code) if order == "lag" else (0, 0.0, row.code)
        items.append((key, item))
    items.sort(key=lambda pair: pair[0])
    start = parse_cursor(cursor)
    page = [item for _, item in items[start : start + limit]]
    more = start + limit < len(items)
    return PointPacePage(
        items=page,
        next_cursor=str(start + limit) if more else None,
        total=len(items),
        lagging=sum(item.lagging for _, item in items),
    )
