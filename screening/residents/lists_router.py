"""Lists for community workers (admin): code sheets and who has not been swabbed."""

from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query, Request, Response

from screening.auth import AdminOnly
from screening.db import DbSession, HeavySession
from screening.privacy import Vault
from screening.residents import lists
from screening.residents.schemas import UnsampledDistrict, UnsampledPage
from screening.schemas import Id32, parse_cursor

router = APIRouter(tags=["residents"])

Community = Annotated[str | None, Query(max_length=64, description="neighbourhood committee")]
DistrictCode = Annotated[str | None, Query(max_length=32, description="district code")]


def _vault(request: Request) -> Vault:
    vault: Vault = request.app.state.vault
    return vault


@router.get(
    "/districts/{code}/code-sheets.pdf",
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}}, "description": "A4 code cards"}},
)
async def code_sheets(
    code: str,
    request: Request,
    session: HeavySession,
    principal: AdminOnly,
    community: Community = None,
) -> Response:
    """A4 cards, one per resident (full name, masked ID, QR of the code) for people
    without phones; every download is audited."""
    settings = request.app.state.settings
    pdf = await lists.code_sheets(
        session,
        principal,
        _vault(request),
        district=code,
        community=community,
        max_cards=settings.code_sheet_max_cards,
        zone=ZoneInfo(settings.timezone),
    )
    return Response(
        pdf,
        media_type="application/pdf",
        headers={
            "Content-Disposition": f'inline; filename="code-sheets-{code}.pdf"',
            "Cache-Control": "no-store",
        },
    )


@router.get("/rounds/{round_id}/unsampled", response_model=UnsampledPage)
async def unsampled(
    round_id: Id32,
    request: Request,
    session: DbSession,
    _: AdminOnly,
    district: DistrictCode = None,
    community: Community = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: str | None = None,
) -> UnsampledPage:
    """Residents of the round's districts with no sample in this round (masked),
    paged, with the total."""
    return await lists.unsampled_page(
        session,
        _vault(request),
        round_id=round_id,
        district=district,
        community=community,
        after=parse_cursor(cursor),
        limit=limit,
    )


@router.get("/rounds/{round_id}/unsampled/districts", response_model=list[UnsampledDistrict])
async def unsampled_by_district(
    round_id: Id32, session: DbSession, _: AdminOnly
) -> list[UnsampledDistrict]:
    """Per district of the round: residents registered and not yet swabbed."""
    return await lists.unsampled_by_district(session, round_id)


@router.get(
    "/rounds/{round_id}/unsampled.csv",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}, "description": "the list, full names"}},
)
async def unsampled_csv(
    round_id: Id32,
    request: Request,
    session: HeavySession,
    principal: AdminOnly,
    district: DistrictCode = None,
    community: Community = None,
) -> Response:
    """The unsampled list for community workers: full names, phones and addresses;
    every download is audited."""
    body = await lists.unsampled_csv(
        session,
        principal,
        _vault(request),
        round_id=round_id,
        district=district,
        community=community,
    )
    return Response(
        body,
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="unsampled-{round_id}.csv"',
            "Cache-Control": "no-store",
        },
    )
