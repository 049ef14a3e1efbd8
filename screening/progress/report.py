"""Gathering the round report's figures (reports/round_report.py renders them).

Headline, district and lab figures come from the same counters as the progress
endpoint; the progress-over-time chart from one pass over the round's tubes
(sealed_at, resulted_at), the turnaround chart from the turnaround counters, cases
and positives from their own small tables. Names and ID numbers are masked.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import anyio
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from reports.round_report import RoundReport, Row, render_round_report
from screening.config import Settings
from screening.privacy import Vault, mask_id_number, mask_name
from screening.progress.service import round_progress
from screening.rounds.service import get_round

MAX_LISTED = 500

# hours as the zone's clock has them (local wall time, so a 30-minute zone cuts right)
_HOURLY = text("""
SELECT h, sum(sealed)::bigint AS sealed, sum(resulted)::bigint AS resulted FROM (
    SELECT date_trunc('hour', sealed_at AT TIME ZONE :zone) AS h, count(*) AS sealed,
           0 AS resulted
    FROM tubes WHERE round_id = :round_id AND sealed_at IS NOT NULL GROUP BY 1
    UNION ALL
    SELECT date_trunc('hour', resulted_at AT TIME ZONE :zone), 0, count(*)
    FROM tubes WHERE round_id = :round_id AND resulted_at IS NOT NULL GROUP BY 1
) x GROUP BY h ORDER BY h
""")

_CASES = text("""
SELECT c.id, t.barcode, p.code AS point, c.status, c.discordant,
       (SELECT count(*) FROM retest_members m WHERE m.case_id = c.id) AS members,
       extract(epoch FROM coalesce(c.resolved_at, now()) - c.opened_at) / 3600 AS age
FROM retest_cases c
JOIN tubes t ON t.serial = c.pool_tube_serial
JOIN sampling_points p ON p.id = c.sampling_point_id
WHERE c.round_id = :round_id ORDER BY c.id LIMIT :limit
""")

_POSITIVES = text("""
SELECT r.code, r.name_enc, r.id_enc, p.code AS point, t.barcode, t.resulted_at
FROM tubes t
JOIN samples s ON s.tube_serial = t.serial
JOIN residents r ON r.id = s.resident_id
JOIN sampling_points p ON p.id = t.sampling_point_id
WHERE t.round_id = :round_id AND t.kind = 'single'
  AND t.result_call IN ('positive', 'suspicious')
ORDER BY t.resulted_at, r.code LIMIT :limit
""")

_TURNAROUND = text("""
SELECT bucket, sum(n)::bigint AS n FROM turnaround_counts WHERE round_id = :round_id
GROUP BY bucket ORDER BY bucket
""")


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


async def round_report_pdf(
    session: AsyncSession, settings: Settings, vault: Vault, round_id: int
) -> bytes:
    progress = await round_progress(session, settings, round_id, points_limit=1)
    name = (await get_round(session, round_id)).name  # loaded already: no second query
    zone = settings.zone
    params = {"round_id": round_id, "limit": MAX_LISTED}
    t = progress.tubes
    coverage = progress.registered / progress.population if progress.population else None
    headline = [
        (
            "已采样人数 People swabbed / population",
            f"{progress.registered:,} / {progress.population:,} ({_pct(coverage)})",
        ),
        ("采样人次 Swabs taken (re-tests included)", f"{progress.samples:,}"),
        (
            "管 Tubes: open / sealed / packed / on the road / at labs / tested",
            f"{t.open:,} / {t.sealed:,} / {t.packed:,} / {t.in_transit:,} / {t.received:,}"
            f" / {t.tested:,}",
        ),
        (
            "结果 Results: negative / positive / suspicious / invalid",
            " / ".join(f"{v:,}" for v in progress.results.model_dump().values()),
        ),
        (
            "混管阳性复核 De-pool cases: open / resolved / overdue / discordant",
            " / ".join(f"{v:,}" for v in progress.retests.model_dump().values()),
        ),
        (
            "阳性/可疑混管 Positive / suspicious pools",
            f"{progress.pools.positive:,} / {progress.pools.suspicious:,}",
        ),
        (
            "阳性/可疑单管 Positive / suspicious single tubes",
            f"{progress.singles.positive:,} / {progress.singles.suspicious:,}",
        ),
        ("确诊阳性 Confirmed positive people", f"{progress.confirmed_positive:,}"),
        ("超时转运箱 Boxes late", f"{progress.boxes_late:,}"),
        (
            "周转 Turnaround p50 / p95 (h)",
            f"{progress.turnaround_hours.p50} / {progress.turnaround_hours.p95}",
        ),
    ]
    districts = [
        Row(
            (
                f"{d.district} {d.name}",
                f"{d.population:,}",
                f"{d.registered:,}",
                _pct(d.coverage),
                f"{d.tubes.tested:,}",
                f"{d.pools.positive + d.pools.suspicious:,}",
                f"{d.confirmed_positive:,}",
            )
        )
        for d in progress.districts
    ]
    labs = [
        Row(
            (
                f"{lab.lab} {lab.name}",
                f"{lab.daily_capacity_tubes:,}",
                f"{lab.tubes.received + lab.tubes.tested:,}",
                f"{lab.tubes.tested:,}",
                _pct(lab.load),
                f"{lab.pools.positive + lab.pools.suspicious:,}"
                f" / {lab.singles.positive + lab.singles.suspicious:,}",
                f"{lab.in_lab_hours.p50} / {lab.in_lab_hours.p95}",
            )
        )
        for lab in progress.labs
    ]
    cases = [
        Row(
            (
                str(c.id),
                c.barcode,
                c.point,
                c.status,
                str(c.members),
                f"{float(c.age):.1f}",
                "是 yes" if c.discordant else ("否 no" if c.discordant is False else "-"),
            )
        )
        for c in (await session.execute(_CASES, params)).all()
    ]
    positives = [
        Row(
            (
                p.code,
                mask_name(vault.decrypt(p.name_enc)),
                mask_id_number(vault.decrypt(p.id_enc)),
                p.point,
                p.barcode,
                f"{p.resulted_at.astimezone(zone):%m-%d %H:%M}" if p.resulted_at else "-",
            )
        )
        for p in (await session.execute(_POSITIVES, params)).all()
    ]
    half_hours: Counter[int] = Counter()
    for row in (await session.execute(_TURNAROUND, params)).all():
        half_hours[row.bucket // 6] += row.n
    turnaround = [((k + 1) / 2, half_hours[k]) for k in range(max(half_hours, default=-1) + 1)]
    hourly, sealed, resulted = [], 0, 0
    for row in (await session.execute(_HOURLY, {**params, "zone": settings.timezone})).all():
        sealed += row.sealed
        resulted += row.resulted
        hourly.append((f"{row.h:%d日%H时}", sealed, resulted))
    notes = []
    if len(cases) == MAX_LISTED or len(positives) == MAX_LISTED:
        notes.append(f"列表仅前 {MAX_LISTED} 项 Lists show the first {MAX_LISTED} only.")
    report = RoundReport(
        round_name=str(name),
        generated_at=datetime.now(UTC),
        zone=zone,
        headline=headline,
        districts=districts,
        labs=labs,
        cases=cases,
        positives=positives,
        turnaround=turnaround,
        hourly=hourly,
        notes=notes,
    )
    return await anyio.to_thread.run_sync(render_round_report, report)
