from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from screening.auth import AdminOnly, AnyRole
from screening.config import Settings
from screening.db import DbSession, HeavySession
from screening.rounds import service
from screening.rounds.schemas import (
    PlanRead,
    RangeCreate,
    RangeIssued,
    RangeRead,
    RoundCreate,
    RoundRead,
)
from screening.schemas import INT32_MAX, Id32, Page, page_of, parse_cursor

router = APIRouter(tags=["rounds and planning"])


@router.post("/rounds", status_code=201, response_model=RoundRead)
async def create_round(body: RoundCreate, session: DbSession, _: AdminOnly) -> RoundRead:
    """Open a round over some districts, with its pool size and per-district overrides."""
    return await service.create_round(session, body)


@router.get("/rounds", response_model=Page[RoundRead])
async def list_rounds(
    session: DbSession,
    _: AnyRole,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: str | None = None,
) -> Page[RoundRead]:
    """List rounds, oldest first."""
    items = await service.list_rounds(session, after=parse_cursor(cursor), limit=limit)
    return page_of(items, limit, items[-1].id if items else None)


@router.get("/rounds/{round_id}", response_model=RoundRead)
async def read_round(round_id: Id32, session: DbSession, _: AnyRole) -> RoundRead:
    """One round."""
    return await service.read_round(session, round_id)


@router.post("/rounds/{round_id}/close", response_model=RoundRead)
async def close_round(round_id: Id32, session: DbSession, _: AdminOnly) -> RoundRead:
    """Close a round: no more samples are taken in it."""
    return await service.close_round(session, round_id)


@router.get("/rounds/{round_id}/plan", response_model=PlanRead)
async def plan_round(round_id: Id32, session: DbSession, _: AdminOnly) -> PlanRead:
    """Per district: can the round be sampled and tested in time, and what limits it."""
    return await service.plan_round(session, round_id)


@router.post("/rounds/{round_id}/barcodes", status_code=201, response_model=RangeIssued)
async def issue_barcodes(
    round_id: Id32, body: RangeCreate, session: DbSession, _: AdminOnly
) -> RangeIssued:
    """Issue a range of tube barcodes to a sampling point for this round."""
    return await service.issue_range(session, round_id, body)


@router.get("/rounds/{round_id}/barcodes/{range_id}", response_model=RangeRead)
async def read_barcodes(
    round_id: Id32, range_id: Id32, session: DbSession, _: AdminOnly
) -> RangeRead:
    """The barcodes of one issued range."""
    return await service.read_range(session, round_id, range_id)


@router.get(
    "/rounds/{round_id}/barcodes/{range_id}/labels.pdf",
    response_class=Response,
    responses={
        200: {"content": {"application/pdf": {}}, "description": "A4 label sheet"},
        422: {"description": "too-many-labels: the range is larger than a sheet; ask by part"},
        503: {"description": "server-busy: too many PDFs and uploads at once; Retry-After"},
    },
)
async def barcode_labels(
    round_id: Id32,
    range_id: Id32,
    request: Request,
    session: HeavySession,
    _: AdminOnly,
    part: Annotated[
        int | None, Query(ge=1, le=INT32_MAX, description="1-based; needed for large ranges")
    ] = None,
) -> Response:
    """Printable Code 128 label sheet for one range; a range larger than
    ``SCREENING_MAX_LABELS_PER_SHEET`` comes in parts (``?part=1``, ``Link: rel=next``)."""
    settings: Settings = request.app.state.settings
    sheet = await service.range_labels_pdf(
        session,
        round_id,
        range_id,
        part=part,
        per_sheet=settings.max_labels_per_sheet,
    )
    suffix = f"-{sheet.part}of{sheet.parts}" if sheet.parts > 1 else ""
    headers = {
        "Content-Disposition": f'inline; filename="labels-{round_id}-{range_id}{suffix}.pdf"'
    }
    if sheet.part < sheet.parts:
        headers["Link"] = f'<{request.url.include_query_params(part=sheet.part + 1)}>; rel="next"'
    return Response(sheet.pdf, media_type="application/pdf", headers=headers)
