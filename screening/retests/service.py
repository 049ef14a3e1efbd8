"""De-pooling (DOMAIN.md step 8, API.md De-pooling): cases open in the transaction that
stores a positive or suspicious pool result, members link to their single re-test
when it is registered and move with its result, and cases resolve, all set-based.

Every change writes a ``retest_events`` row (who, when, from what), which is also
what the live feed streams.
"""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo

import anyio
from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY, BIGINT
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from pooling.advice import advise
from reports.recall import RecallCase, RecallMember, render_recall_sheet
from screening.config import Settings
from screening.db import Db
from screening.errors import NotFound
from screening.privacy import Vault, mask_id_number, mask_name, mask_phone
from screening.retests.schemas import (
    AdviceRead,
    CaseDetail,
    CaseRead,
    DistrictAdvice,
    HistoryEntry,
    Interval,
    MemberRead,
    RetestList,
)
from screening.rounds.service import get_round
from screening.schemas import page_of
from screening.tokens.service import Principal

FINAL = ("negative", "positive")


def actor_of(principal: Principal) -> str:
    """Who did it, for the history (never personal data)."""
    if principal.role == "sampler":
        return f"sampler:point {principal.sampling_point_id}"
    if principal.role == "lab":
        return f"lab:{principal.lab_id}"
    return "admin" if principal.token_id is None else f"admin:token {principal.token_id}"


# ---- when single samples are registered (scan or sync) -----------------------------

_LINK_SINGLES = text("""
WITH changed AS (
    UPDATE retest_members m
    SET status = 'resampled', single_tube_serial = s.tube_serial, updated_at = now()
    FROM samples s JOIN tubes t ON t.serial = s.tube_serial, retest_members old, retest_cases c
    WHERE s.id = ANY(:sample_ids) AND (s.kind = 'single' OR t.capacity = 1)
      AND m.resident_id = s.resident_id
      AND old.case_id = m.case_id AND old.resident_id = m.resident_id
      AND c.id = m.case_id AND c.status = 'open'
      AND m.status IN ('to-recall', 'invalid')
    RETURNING m.case_id, m.resident_id, old.status AS from_status, c.round_id,
              c.sampling_point_id
)
INSERT INTO retest_events (round_id, case_id, sampling_point_id, resident_id, kind,
                           from_status, to_status, actor)
SELECT round_id, case_id, sampling_point_id, resident_id, 'member-resampled', from_status,
       'resampled', :actor
FROM changed ORDER BY case_id, resident_id
""").bindparams(bindparam("sample_ids", type_=ARRAY(BIGINT)))


async def link_singles(session: Db, sample_ids: list[int], actor: str) -> None:
    """Members of open cases registered in a single tube are now ``resampled``."""
    if sample_ids:
        await session.execute(_LINK_SINGLES, {"sample_ids": sample_ids, "actor": actor})


# ---- overdue -----------------------------------------------------------------------

_OVERDUE_MEMBERS = text("""
WITH flagged AS (
    UPDATE retest_members m SET overdue_at = now()
    FROM retest_cases c
    WHERE c.id = m.case_id AND c.status = 'open' AND m.status IN ('to-recall', 'invalid')
      AND m.overdue_at IS NULL
      AND greatest(c.opened_at, m.updated_at) <= now() - make_interval(secs => :member_secs)
    RETURNING m.case_id, m.resident_id, m.status, c.round_id, c.sampling_point_id
)
INSERT INTO retest_events (round_id, case_id, sampling_point_id, resident_id, kind,
                           from_status, to_status, actor)
SELECT round_id, case_id, sampling_point_id, resident_id, 'member-overdue', status, status,
       'system'
FROM flagged ORDER BY case_id, resident_id
""")

_OVERDUE_CASES = text("""
WITH flagged AS (
    UPDATE retest_cases c SET overdue_at = now()
    WHERE c.status = 'open' AND c.overdue_at IS NULL
      AND c.opened_at <= now() - make_interval(secs => :case_secs)
    RETURNING c.id, c.round_id, c.sampling_point_id
)
INSERT INTO retest_events (round_id, case_id, sampling_point_id, kind, from_status,
                           to_status, actor)
SELECT round_id, id, sampling_point_id, 'case-overdue', 'open', 'open', 'system'
FROM flagged ORDER BY id
""")


async def flag_overdue(session: AsyncSession | AsyncConnection, settings: Settings) -> None:
    """Flag members not re-sampled in time and cases not resolved in time, once each
    (a ``member-overdue`` / ``case-overdue`` event). A member recalled again after an
    invalid result counts from that result. Only the background sweep calls this
    (screening.retests.sweeper): reads never write."""
    await session.execute(
        _OVERDUE_MEMBERS, {"member_secs": settings.retest_member_overdue_minutes * 60}
    )
    await session.execute(_OVERDUE_CASES, {"case_secs": settings.retest_case_overdue_minutes * 60})


# ---- reading -----------------------------------------------------------------------


async def count_open_cases(conn: AsyncConnection) -> int:
    """De-pool cases open now, every round together (for /metrics)."""
    return int(
        await conn.scalar(text("SELECT count(*) FROM retest_cases WHERE status = 'open'")) or 0
    )


_CASES = text("""
SELECT c.id, c.status, c.pool_result, c.opened_at, c.resolved_at, c.discordant,
       c.overdue_at, t.barcode AS pool_tube, p.code AS sampling_point, l.code AS lab,
       extract(epoch FROM coalesce(c.resolved_at, now()) - c.opened_at) AS age_seconds
FROM retest_cases c
JOIN tubes t ON t.serial = c.pool_tube_serial
JOIN sampling_points p ON p.id = c.sampling_point_id
LEFT JOIN labs l ON l.id = c.lab_id
WHERE c.round_id = :round_id
  AND (CAST(:status AS text) IS NULL OR c.status = :status)
  AND (CAST(:point AS int) IS NULL OR c.sampling_point_id = :point)
  AND (CAST(:lab AS int) IS NULL OR c.lab_id = :lab)
  AND (NOT :discordant_only OR c.discordant)
  AND c.id > :after
ORDER BY c.id
LIMIT :limit
""")

_MEMBERS = text("""
SELECT m.case_id, m.status, m.updated_at, m.overdue_at, r.code, r.name_enc, r.id_enc,
       r.phone_enc, r.address_enc, st.barcode AS single_tube
FROM retest_members m
JOIN residents r ON r.id = m.resident_id
LEFT JOIN tubes st ON st.serial = m.single_tube_serial
WHERE m.case_id = ANY(:case_ids)
ORDER BY m.case_id, r.code
""").bindparams(bindparam("case_ids", type_=ARRAY(BIGINT)))


async def list_cases(
    session: AsyncSession,
    principal: Principal,
    vault: Vault,
    settings: Settings,
    *,
    round_id: int,
    status: str | None,
    discordant_only: bool = False,
    after: int = 0,
    limit: int = 100,
) -> RetestList:
    """Cases of a round, members masked; a sampler sees its own point's, a lab its own."""
    await get_round(session, round_id)
    rows = (
        await session.execute(
            _CASES,
            {
                "round_id": round_id,
                "status": status,
                "point": principal.sampling_point_id if principal.role == "sampler" else None,
                "lab": principal.lab_id if principal.role == "lab" else None,
                "discordant_only": discordant_only,
                "after": after,
                "limit": limit,
            },
        )
    ).all()
    members: dict[int, list[MemberRead]] = {row.id: [] for row in rows}
    if rows:
        for m in (await session.execute(_MEMBERS, {"case_ids": list(members)})).all():
            members[m.case_id].append(
                MemberRead(
                    resident_code=m.code,
                    name_masked=mask_name(vault.decrypt(m.name_enc)),
                    id_masked=mask_id_number(vault.decrypt(m.id_enc)),
                    phone_masked=mask_phone(vault.decrypt(m.phone_enc)) if m.phone_enc else None,
                    status=m.status,
                    single_tube=m.single_tube,
                    overdue=m.overdue_at is not None and m.status in ("to-recall", "invalid"),
                )
            )
    items = [
        CaseRead(
            case_id=row.id,
            status=row.status,
            pool_tube=row.pool_tube,
            pool_result=row.pool_result,
            sampling_point=row.sampling_point,
            lab=row.lab,
            opened_at=row.opened_at,
            resolved_at=row.resolved_at,
            age_minutes=round(float(row.age_seconds) / 60, 1),
            overdue=row.overdue_at is not None and row.status == "open",
            discordant=row.discordant,
            members=members[row.id],
        )
        for row in rows
    ]
    return page_of(items, limit, items[-1].case_id if items else None)


_HISTORY = text("""
SELECT e.at, e.kind, r.code AS resident_code, e.from_status, e.to_status, e.actor
FROM retest_events e LEFT JOIN residents r ON r.id = e.resident_id
WHERE e.case_id = :case_id ORDER BY e.id
""")


async def read_case(
    session: AsyncSession,
    principal: Principal,
    vault: Vault,
    settings: Settings,
    *,
    round_id: int,
    case_id: int,
) -> CaseDetail:
    found = await list_cases(
        session,
        principal,
        vault,
        settings,
        round_id=round_id,
        status=None,
        after=case_id - 1,
        limit=1,
    )
    if not found.items or found.items[0].case_id != case_id:
        raise NotFound(f"no de-pool case {case_id} in round {round_id}")
    history = [
        HistoryEntry(**row._mapping)
        for row in (await session.execute(_HISTORY, {"case_id": case_id})).all()
    ]
    return CaseDetail(**found.items[0].model_dump(), history=history)


_OBSERVED = text("""
SELECT d.code, rd.pool_size,
       count(DISTINCT s.resident_id) FILTER (WHERE t.result_call IS NOT NULL) AS tested,
       count(DISTINCT s.resident_id) FILTER (
           WHERE t.kind = 'single' AND t.result_call IN ('positive', 'suspicious')) AS positive
FROM round_districts rd
JOIN districts d ON d.id = rd.district_id
LEFT JOIN sampling_points p ON p.district_id = d.id
LEFT JOIN tubes t ON t.sampling_point_id = p.id AND t.round_id = rd.round_id
LEFT JOIN samples s ON s.tube_serial = t.serial
WHERE rd.round_id = :round_id
GROUP BY d.code, rd.pool_size
ORDER BY d.code
""")


async def pool_size_advice(session: AsyncSession, round_id: int) -> AdviceRead:
    """Per district: observed prevalence (people counted where they were swabbed),
    Dorfman costs and the advised pool size for the next round."""
    await get_round(session, round_id)
    districts = []
    for row in (await session.execute(_OBSERVED, {"round_id": round_id})).all():
        advice = advise(row.positive, row.tested, row.pool_size)
        districts.append(
            DistrictAdvice(
                district=row.code,
                pool_size=row.pool_size,
                tested=row.tested,
                positive=row.positive,
                prevalence=advice.prevalence,
                interval=Interval(low=advice.interval[0], high=advice.interval[1]),
                expected_tests=advice.expected_tests,
                ct_shift=advice.ct_shift,
                recommended=advice.recommended,
                reason=advice.reason,
            )
        )
    return AdviceRead(round_id=round_id, districts=districts)


_RECALL_CASE = text("""
SELECT c.id, r.name AS round_name, t.barcode AS pool_tube, c.pool_result,
       p.code || ' ' || p.name AS sampling_point, p.address, l.code AS lab, c.opened_at
FROM retest_cases c
JOIN rounds r ON r.id = c.round_id
JOIN tubes t ON t.serial = c.pool_tube_serial
JOIN sampling_points p ON p.id = c.sampling_point_id
LEFT JOIN labs l ON l.id = c.lab_id
WHERE c.id = :case_id AND c.round_id = :round_id
""")


async def recall_sheet(
    session: AsyncSession,
    principal: Principal,
    vault: Vault,
    *,
    round_id: int,
    case_id: int,
    zone: tzinfo,
) -> bytes:
    """The squad's recall sheet (full names and phones) as PDF; every download is
    written to the audit trail in the same transaction."""
    row = (await session.execute(_RECALL_CASE, {"case_id": case_id, "round_id": round_id})).first()
    if row is None:
        raise NotFound(f"no de-pool case {case_id} in round {round_id}")
    members = [
        RecallMember(
            resident_code=m.code,
            name=vault.decrypt(m.name_enc),
            phone=vault.decrypt(m.phone_enc) if m.phone_enc else None,
            status=m.status,
            single_tube=m.single_tube,
            home=vault.decrypt(m.address_enc) if m.address_enc else None,
        )
        for m in (await session.execute(_MEMBERS, {"case_ids": [case_id]})).all()
    ]
    await session.execute(
        text(
            "INSERT INTO audit_log (role, token_id, action, subject, detail)"
            " VALUES (:role, :token, 'recall-sheet', :subject, CAST(:detail AS jsonb))"
        ),
        {
            "role": principal.role,
            "token": principal.token_id,
            "subject": f"retest_case:{case_id}",
            "detail": f'{{"round_id": {round_id}, "members": {len(members)}}}',
        },
    )
    case = RecallCase(
        case_id=row.id,
        round_name=row.round_name,
        pool_tube=row.pool_tube,
        pool_result=row.pool_result,
        sampling_point=row.sampling_point,
        address=row.address,
        lab=row.lab,
        opened_at=row.opened_at,
    )
    printed_at = datetime.now(UTC)
    return await anyio.to_thread.run_sync(
        lambda: render_recall_sheet(case, members, printed_at=printed_at, zone=zone)
    )
