"""Where a round stands, read from counters (``progress_counts``, ``turnaround_counts``,
kept by triggers, migration 0004) and from the small tables (de-pool cases, boxes on
the road): the cost grows with sampling points and labs, never with samples."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from screening.config import Settings
from screening.errors import NotFound
from screening.progress.schemas import (
    DistrictProgress,
    LabProgress,
    Part,
    PointProgress,
    Progress,
    ResultCounts,
    RetestCounts,
    TubeCounts,
    Turnaround,
)

BUCKET_HOURS = 5 / 60

_COUNTERS = ", ".join(
    f"sum({c})::bigint AS {c}"
    for c in (
        "registered",
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
)

_BY_POINT = text(f"""
SELECT c.sampling_point_id AS id, p.code, p.name, d.code AS district, {_COUNTERS}
FROM progress_counts c
JOIN sampling_points p ON p.id = c.sampling_point_id
JOIN districts d ON d.id = p.district_id
WHERE c.round_id = :round_id
GROUP BY c.sampling_point_id, p.code, p.name, d.code
ORDER BY p.code
""")

_BY_LAB = text(f"""
SELECT l.id, l.code, l.name, l.daily_capacity_tubes, {_COUNTERS}
FROM progress_counts c JOIN labs l ON l.id = c.lab_id
WHERE c.round_id = :round_id
GROUP BY l.id
ORDER BY l.code
""")

_DISTRICTS = text("""
SELECT d.code, d.name, d.population
FROM round_districts rd JOIN districts d ON d.id = rd.district_id
WHERE rd.round_id = :round_id ORDER BY d.code
""")

_TURNAROUND = text("""
SELECT lab_id, bucket, n FROM turnaround_counts WHERE round_id = :round_id ORDER BY bucket
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
_LATE_BOXES = text("""
SELECT b.sampling_point_id, b.lab_id, count(*) AS n
FROM boxes b
WHERE b.state = 'in_transit' AND b.dispatched_at <= now() - make_interval(secs => :late_secs)
  AND EXISTS (SELECT 1 FROM tubes t WHERE t.box_id = b.id AND t.round_id = :round_id)
GROUP BY b.sampling_point_id, b.lab_id
""")


def _fill(part: Part, row: Any) -> None:
    part.registered += row.registered
    part.tubes = TubeCounts(
        open=part.tubes.open + row.open,
        sealed=part.tubes.sealed + row.sealed,
        packed=part.tubes.packed + row.packed,
        in_transit=part.tubes.in_transit + row.in_transit,
        received=part.tubes.received + row.received,
        tested=part.tubes.tested + row.resulted,
    )
    part.results = ResultCounts(
        negative=part.results.negative + row.negative,
        positive=part.results.positive + row.positive,
        suspicious=part.results.suspicious + row.suspicious,
        invalid=part.results.invalid + row.invalid,
    )
    part.confirmed_positive += row.single_positive


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


async def round_progress(session: AsyncSession, settings: Settings, round_id: int) -> Progress:
    exists = await session.scalar(text("SELECT 1 FROM rounds WHERE id = :id"), {"id": round_id})
    if exists is None:
        raise NotFound(f"no round {round_id}")
    params = {"round_id": round_id}
    districts = {
        row.code: DistrictProgress(
            district=row.code, name=row.name, population=row.population, coverage=None
        )
        for row in (await session.execute(_DISTRICTS, params)).all()
    }
    points: list[PointProgress] = []
    point_ids: dict[int, PointProgress] = {}
    total = Progress(
        round_id=round_id,
        population=sum(d.population for d in districts.values()),
        retests=RetestCounts(),
        turnaround_hours=Turnaround(),
        districts=[],
        labs=[],
        sampling_points=[],
    )
    for row in (await session.execute(_BY_POINT, params)).all():
        point = PointProgress(sampling_point=row.code, name=row.name, district=row.district)
        _fill(point, row)
        _fill(total, row)
        if row.district in districts:
            _fill(districts[row.district], row)
        points.append(point)
        point_ids[row.id] = point
    buckets: dict[int, list[tuple[int, int]]] = {}
    for row in (await session.execute(_TURNAROUND, params)).all():
        buckets.setdefault(row.lab_id, []).append((row.bucket, row.n))
    labs: list[LabProgress] = []
    lab_ids: dict[int, LabProgress] = {}
    for row in (await session.execute(_BY_LAB, params)).all():
        lab = LabProgress(
            lab=row.code,
            name=row.name,
            daily_capacity_tubes=row.daily_capacity_tubes,
            load=None,
            turnaround_hours=percentiles(buckets.get(row.id, [])),
        )
        _fill(lab, row)
        if row.daily_capacity_tubes:
            received = lab.tubes.received + lab.tubes.tested
            lab.load = round(received / row.daily_capacity_tubes, 6)
        labs.append(lab)
        lab_ids[row.id] = lab
    for row in (
        await session.execute(_LATE_BOXES, {**params, "late_secs": settings.box_late_minutes * 60})
    ).all():
        total.boxes_late += row.n
        if row.sampling_point_id in point_ids:
            point = point_ids[row.sampling_point_id]
            point.boxes_late += row.n
            if point.district in districts:
                districts[point.district].boxes_late += row.n
        if row.lab_id in lab_ids:
            lab_ids[row.lab_id].boxes_late += row.n
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
    total.labs = labs
    total.sampling_points = points
    return total
