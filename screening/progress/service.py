"""Where a round stands, read from counters (``progress_counts``, ``turnaround_counts``,
``lab_turnaround_counts``, kept by triggers, migrations 0004 and 0006) and from the
small tables (de-pool cases, boxes on the road): the cost grows with sampling points
and labs, never with samples."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from screening.config import Settings
from screening.progress.schemas import (
    DistrictProgress,
    LabProgress,
    Part,
    PointProgress,
    PositiveCounts,
    Progress,
    ResultCounts,
    RetestCounts,
    TubeCounts,
    Turnaround,
)
from screening.rounds.service import get_round

BUCKET_HOURS = 5 / 60

COUNTED = (
    "registered",
    "people",
    "pool_positive",
    "pool_suspicious",
    "open",
    "sealed",
    "packed",
    "in_transit",
    "received",
    "resulted",
    "negative",
    "positive",
    "suspicious",
    "invalid",
    "single_positive",
)
_COUNTERS = ", ".join(f"sum({c})::bigint AS {c}" for c in COUNTED)

# one pass over the counters gives every district and every lab
_GROUPED = text(f"""
SELECT p.district_id, c.lab_id, {_COUNTERS}
FROM progress_counts c JOIN sampling_points p ON p.id = c.sampling_point_id
WHERE c.round_id = :round_id
GROUP BY GROUPING SETS ((p.district_id), (c.lab_id))
""")

# one page of sampling points, by code
_POINTS = text(f"""
WITH page AS (
    SELECT p.id, p.code, p.name, d.code AS district
    FROM sampling_points p JOIN districts d ON d.id = p.district_id
    JOIN round_districts rd ON rd.district_id = d.id AND rd.round_id = :round_id
    WHERE p.code > :after
    ORDER BY p.code
    LIMIT :limit
)
SELECT page.id, page.code, page.name, page.district, {_COUNTERS}
FROM page LEFT JOIN progress_counts c
    ON c.round_id = :round_id AND c.sampling_point_id = page.id
GROUP BY page.id, page.code, page.name, page.district
ORDER BY page.code
""")

_POINT_TOTAL = text("""
SELECT count(*) FROM sampling_points p
JOIN round_districts rd ON rd.district_id = p.district_id AND rd.round_id = :round_id
""")

_LABS = text("SELECT id, code, name, daily_capacity_tubes FROM labs ORDER BY code")

_DISTRICTS = text("""
SELECT d.id, d.code, d.name, d.population
FROM round_districts rd JOIN districts d ON d.id = rd.district_id
WHERE rd.round_id = :round_id ORDER BY d.code
""")

_TURNAROUND = text("""
SELECT lab_id, bucket, n FROM turnaround_counts WHERE round_id = :round_id ORDER BY bucket
""")

_LAB_TURNAROUND = text("""
SELECT lab_id, bucket, n FROM lab_turnaround_counts WHERE round_id = :round_id ORDER BY bucket
""")

_RETESTS = text("""
SELECT count(*) FILTER (WHERE status = 'open') AS open,
       count(*) FILTER (WHERE status = 'resolved') AS resolved,
       count(*) FILTER (WHERE status = 'open' AND (overdue_at IS NOT NULL
                        OR opened_at <= now() - make_interval(secs => :case_secs))) AS overdue,
       count(*) FILTER (WHERE discordant) AS discordant
FROM retest_cases WHERE round_id = :round_id
""")

# boxes on the road are few at any time (partial index on state <> 'received')
LATE_BOXES = text("""
SELECT b.sampling_point_id, b.lab_id, count(*) AS n
FROM boxes b
WHERE b.state = 'in_transit' AND b.dispatched_at <= now() - make_interval(secs => :late_secs)
  AND EXISTS (SELECT 1 FROM tubes t WHERE t.box_id = b.id AND t.round_id = :round_id)
GROUP BY b.sampling_point_id, b.lab_id
""")


def _fill(part: Part, row: Any) -> None:
    """Add one counters row (sums; NULL where nothing was counted) to ``part``."""
    n = {name: getattr(row, name) or 0 for name in COUNTED}
    part.registered += n["people"]
    part.samples += n["registered"]  # the counter column predates "people" (0004)
    t, r = part.tubes, part.results
    part.tubes = TubeCounts(
        open=t.open + n["open"],
        sealed=t.sealed + n["sealed"],
        packed=t.packed + n["packed"],
        in_transit=t.in_transit + n["in_transit"],
        received=t.received + n["received"],
        tested=t.tested + n["resulted"],
    )
    part.results = ResultCounts(
        negative=r.negative + n["negative"],
        positive=r.positive + n["positive"],
        suspicious=r.suspicious + n["suspicious"],
        invalid=r.invalid + n["invalid"],
    )
    part.confirmed_positive += n["single_positive"]
    part.pools = PositiveCounts(
        positive=part.pools.positive + n["pool_positive"],
        suspicious=part.pools.suspicious + n["pool_suspicious"],
    )
    part.singles = PositiveCounts(
        positive=part.results.positive - part.pools.positive,
        suspicious=part.results.suspicious - part.pools.suspicious,
    )


def percentiles(buckets: Iterable[tuple[int, int]]) -> Turnaround:
    """p50 and p95 in hours from (5-minute bucket, tubes) pairs; a bucket reads as its
    upper edge, so figures err late, never early."""
    pairs = sorted(buckets)
    total = sum(n for _, n in pairs)
    if total == 0:
        return Turnaround()
    out: dict[str, float] = {}
    for name, share in (("p50", 0.5), ("p95", 0.95)):
        wanted, seen = share * total, 0
        for bucket, n in pairs:
            seen += n
            if seen >= wanted:
                out[name] = round((bucket + 1) * BUCKET_HOURS, 2)
                break
    return Turnaround(**out)


async def round_progress(
    session: AsyncSession,
    settings: Settings,
    round_id: int,
    *,
    points_after: str = "",
    points_limit: int = 100,
) -> Progress:
    await get_round(session, round_id)
    params = {"round_id": round_id}
    district_rows = (await session.execute(_DISTRICTS, params)).all()
    districts = {
        row.id: DistrictProgress(
            district=row.code, name=row.name, population=row.population, coverage=None
        )
        for row in district_rows
    }
    total = Progress(
        round_id=round_id,
        timezone=settings.timezone,
        population=sum(d.population for d in districts.values()),
        retests=RetestCounts(),
        turnaround_hours=Turnaround(),
        districts=[],
        labs=[],
        sampling_points=[],
    )
    by_lab: dict[int, Any] = {}
    for row in (await session.execute(_GROUPED, params)).all():
        if row.district_id is not None:
            _fill(total, row)
            if row.district_id in districts:
                _fill(districts[row.district_id], row)
        elif row.lab_id:
            by_lab[row.lab_id] = row
    buckets: dict[int, list[tuple[int, int]]] = {}
    for row in (await session.execute(_TURNAROUND, params)).all():
        buckets.setdefault(row.lab_id, []).append((row.bucket, row.n))
    in_lab: dict[int, list[tuple[int, int]]] = {}
    for row in (await session.execute(_LAB_TURNAROUND, params)).all():
        in_lab.setdefault(row.lab_id, []).append((row.bucket, row.n))
    labs: dict[int, LabProgress] = {}
    for row in (await session.execute(_LABS)).all():
        if row.id not in by_lab:
            continue
        lab = LabProgress(
            lab=row.code,
            name=row.name,
            daily_capacity_tubes=row.daily_capacity_tubes,
            load=None,
            turnaround_hours=percentiles(buckets.get(row.id, [])),
            in_lab_hours=percentiles(in_lab.get(row.id, [])),
        )
        _fill(lab, by_lab[row.id])
        if row.daily_capacity_tubes:
            received = lab.tubes.received + lab.tubes.tested
            lab.load = round(received / row.daily_capacity_tubes, 6)
        labs[row.id] = lab
    points: dict[int, PointProgress] = {}
    for row in (
        await session.execute(_POINTS, {**params, "after": points_after, "limit": points_limit})
    ).all():
        point = PointProgress(sampling_point=row.code, name=row.name, district=row.district)
        _fill(point, row)
        points[row.id] = point
    district_of_point: dict[int, int] = {}
    late = (
        await session.execute(LATE_BOXES, {**params, "late_secs": settings.box_late_minutes * 60})
    ).all()
    if late:
        district_of_point = dict(
            (
                await session.execute(
                    text("SELECT id, district_id FROM sampling_points WHERE id = ANY(:ids)"),
                    {"ids": sorted({row.sampling_point_id for row in late})},
                )
            ).all()
        )
    for row in late:
        total.boxes_late += row.n
        if row.sampling_point_id in points:
            points[row.sampling_point_id].boxes_late += row.n
        district_id = district_of_point.get(row.sampling_point_id)
        if district_id in districts:
            districts[district_id].boxes_late += row.n
        if row.lab_id in labs:
            labs[row.lab_id].boxes_late += row.n
    retests = (
        await session.execute(
            _RETESTS, {**params, "case_secs": settings.retest_case_overdue_minutes * 60}
        )
    ).one()
    total.retests = RetestCounts(**retests._mapping)
    total.turnaround_hours = percentiles(
        (bucket, n) for pairs in buckets.values() for bucket, n in pairs
    )
    for district in districts.values():
        district.coverage = (
            round(district.registered / district.population, 4) if district.population else None
        )
    total.districts = list(districts.values())
    total.labs = list(labs.values())
    total.sampling_points = list(points.values())
    total.sampling_points_total = int(await session.scalar(_POINT_TOTAL, params) or 0)
    if len(points) == points_limit:
        total.sampling_points_next = total.sampling_points[-1].sampling_point
    return total
