"""Lists for community workers: code sheets for people without phones, and who in a
round's districts has not been swabbed yet.

The full-name documents (the code-sheet PDF, the unsampled CSV) are written to the
audit trail in the same transaction as they are produced, like the recall sheet;
the JSON list is masked and not audited.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import anyio
from sqlalchemy import text
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession

from reports.code_sheets import CodeCard, render_code_sheets
from screening.db import release_connection
from screening.errors import NotFound, Unprocessable
from screening.privacy import Vault, mask_id_number, mask_name, mask_phone
from screening.residents.schemas import UnsampledDistrict, UnsampledPage, UnsampledResident
from screening.tokens.service import Principal


class TooManyCards(Unprocessable):
    type, title = "too-many-cards", "Too many cards for one document"


async def _audit(
    session: AsyncSession, principal: Principal, action: str, subject: str, detail: dict[str, Any]
) -> None:
    await session.execute(
        text(
            "INSERT INTO audit_log (role, token_id, action, subject, detail)"
            " VALUES (:role, :token, :action, :subject, CAST(:detail AS jsonb))"
        ),
        {
            "role": principal.role,
            "token": principal.token_id,
            "action": action,
            "subject": subject,
            "detail": json.dumps(detail, ensure_ascii=False),
        },
    )


_DISTRICT_RESIDENTS = text(
    """
    SELECT r.code, r.id_enc, r.name_enc, r.community
    FROM residents r JOIN districts d ON d.id = r.district_id
    WHERE d.code = :district
      AND (CAST(:community AS text) IS NULL OR r.community = :community)
    ORDER BY r.community NULLS LAST, r.id
    LIMIT :limit
    """
)


async def code_sheets(
    session: AsyncSession,
    principal: Principal,
    vault: Vault,
    *,
    district: str,
    community: str | None,
    max_cards: int,
    zone: ZoneInfo,
) -> bytes:
    """One card per resident of ``district`` (of ``community`` when given), as PDF."""
    name = await session.scalar(
        text("SELECT name FROM districts WHERE code = :code"), {"code": district}
    )
    if name is None:
        raise NotFound(f"没有代码为“{district}”的区，请核对。")
    rows = (
        await session.execute(
            _DISTRICT_RESIDENTS,
            {"district": district, "community": community, "limit": max_cards + 1},
        )
    ).all()
    if len(rows) > max_cards:
        raise TooManyCards(
            f"一次最多打印{max_cards}张卡片，该范围的居民更多：请按社区分批打印"
            "（在地址后加 ?community=社区名）。"
        )

    def render() -> bytes:
        cards = [
            CodeCard(
                resident_code=row.code,
                name=vault.decrypt(row.name_enc),
                id_masked=mask_id_number(vault.decrypt(row.id_enc)),
                community=row.community,
            )
            for row in rows
        ]
        return render_code_sheets(
            cards,
            district=f"{district} {name}",
            community=community,
            printed_at=datetime.now(zone),
        )

    await _audit(
        session,
        principal,
        "code-sheets",
        f"district:{district}",
        {"community": community, "cards": len(rows)},
    )
    await release_connection(session)  # the audit is kept; drawing needs no connection
    return await anyio.to_thread.run_sync(render)


async def _round_exists(session: AsyncSession, round_id: int) -> None:
    found = await session.scalar(text("SELECT 1 FROM rounds WHERE id = :id"), {"id": round_id})
    if found is None:
        raise NotFound(f"没有第 {round_id} 号轮次。")


_UNSAMPLED_WHERE = """
    FROM residents r
    JOIN round_districts rd ON rd.district_id = r.district_id AND rd.round_id = :round_id
    JOIN districts d ON d.id = r.district_id
    WHERE (CAST(:district AS text) IS NULL OR d.code = :district)
      AND (CAST(:community AS text) IS NULL OR r.community = :community)
      AND NOT EXISTS (
          SELECT 1 FROM samples s WHERE s.round_id = :round_id AND s.resident_id = r.id
      )
"""
_UNSAMPLED_PAGE = text(
    "SELECT r.id, r.code, r.id_enc, r.name_enc, r.phone_enc, r.community, d.code AS district"
    + _UNSAMPLED_WHERE
    + " AND r.id > :after ORDER BY r.id LIMIT :limit"
)
_UNSAMPLED_TOTAL = text("SELECT count(*)" + _UNSAMPLED_WHERE)
_UNSAMPLED_ALL = text(
    "SELECT r.code, r.id_enc, r.name_enc, r.phone_enc, r.address_enc, r.community,"
    " d.code AS district, d.name AS district_name"
    + _UNSAMPLED_WHERE
    + " ORDER BY d.code, r.community NULLS LAST, r.id"
)
_UNSAMPLED_BY_DISTRICT = text(
    """
    SELECT d.code, d.name, count(r.id) AS registered,
           count(r.id) FILTER (WHERE NOT EXISTS (
               SELECT 1 FROM samples s WHERE s.round_id = :round_id AND s.resident_id = r.id
           )) AS unsampled
    FROM round_districts rd
    JOIN districts d ON d.id = rd.district_id
    LEFT JOIN residents r ON r.district_id = rd.district_id
    WHERE rd.round_id = :round_id
    GROUP BY d.code, d.name
    ORDER BY d.code
    """
)


def _masked(vault: Vault, row: Row[Any]) -> UnsampledResident:
    return UnsampledResident(
        resident_code=row.code,
        name_masked=mask_name(vault.decrypt(row.name_enc)),
        id_masked=mask_id_number(vault.decrypt(row.id_enc)),
        phone_masked=mask_phone(vault.decrypt(row.phone_enc)) if row.phone_enc else None,
        community=row.community,
        district=row.district,
    )


async def unsampled_page(
    session: AsyncSession,
    vault: Vault,
    *,
    round_id: int,
    district: str | None,
    community: str | None,
    after: int,
    limit: int,
) -> UnsampledPage:
    """Residents of the round's districts with no sample in it, masked, by id."""
    await _round_exists(session, round_id)
    params = {"round_id": round_id, "district": district, "community": community}
    rows = (
        await session.execute(_UNSAMPLED_PAGE, {**params, "after": after, "limit": limit})
    ).all()
    total = int(await session.scalar(_UNSAMPLED_TOTAL, params) or 0)
    items = [_masked(vault, row) for row in rows]
    more = len(rows) == limit
    return UnsampledPage(
        items=items, next_cursor=str(rows[-1].id) if more and rows else None, total=total
    )


async def unsampled_by_district(session: AsyncSession, round_id: int) -> list[UnsampledDistrict]:
    """Per district of the round: registered residents and how many are not swabbed."""
    await _round_exists(session, round_id)
    rows = (await session.execute(_UNSAMPLED_BY_DISTRICT, {"round_id": round_id})).all()
    return [
        UnsampledDistrict(
            district=row.code, name=row.name, registered=row.registered, unsampled=row.unsampled
        )
        for row in rows
    ]


CSV_HEADER = ("区", "社区", "姓名", "电话", "住址", "证件号码(打码)", "居民码")


def _csv(vault: Vault, rows: Sequence[Row[Any]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_HEADER)
    for row in rows:
        writer.writerow(
            (
                f"{row.district} {row.district_name}",
                _cell(row.community or ""),
                _cell(vault.decrypt(row.name_enc)),
                vault.decrypt(row.phone_enc) if row.phone_enc else "",
                _cell(vault.decrypt(row.address_enc)) if row.address_enc else "",
                mask_id_number(vault.decrypt(row.id_enc)),
                row.code,
            )
        )
    return "\ufeff".encode() + out.getvalue().encode()  # BOM: spreadsheets read it as UTF-8


def _cell(value: str) -> str:
    """A cell a spreadsheet shows as text, never runs as a formula."""
    return "'" + value if value[:1] in ("=", "+", "-", "@") else value


async def unsampled_csv(
    session: AsyncSession,
    principal: Principal,
    vault: Vault,
    *,
    round_id: int,
    district: str | None,
    community: str | None,
) -> bytes:
    """The unsampled list with full names, phones and addresses (audited)."""
    await _round_exists(session, round_id)
    params = {"round_id": round_id, "district": district, "community": community}
    rows = (await session.execute(_UNSAMPLED_ALL, params)).all()
    await _audit(
        session,
        principal,
        "unsampled-csv",
        f"round:{round_id}",
        {"district": district, "community": community, "rows": len(rows)},
    )
    await release_connection(session)
    return await anyio.to_thread.run_sync(_csv, vault, rows)
