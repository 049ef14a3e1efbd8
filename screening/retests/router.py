from typing import Annotated, Literal

from fastapi import APIRouter, Header, Query, Request, Response
from sse_starlette import EventSourceResponse

from screening.auth import AdminOnly, AdminOrLab, AdminOrSampler
from screening.db import DbSession, HeavySession
from screening.retests import feed, service
from screening.retests.schemas import AdviceRead, CaseDetail, RetestList
from screening.schemas import INT32_MAX, INT64_MAX, Id32, Id64, parse_cursor

router = APIRouter(tags=["de-pooling"])


@router.get("/rounds/{round_id}/retests", response_model=RetestList)
async def list_retests(
    round_id: Id32,
    request: Request,
    session: DbSession,
    principal: AdminOrSampler,
    status: Literal["open", "resolved"] | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: str | None = None,
) -> RetestList:
    """De-pool cases of a round, oldest first, members masked; a sampler sees its own
    point's cases."""
    return await service.list_cases(
        session,
        principal,
        request.app.state.vault,
        request.app.state.settings,
        round_id=round_id,
        status=status,
        after=parse_cursor(cursor),
        limit=limit,
    )


@router.get("/rounds/{round_id}/retests/review", response_model=RetestList)
async def review_list(
    round_id: Id32,
    request: Request,
    session: DbSession,
    principal: AdminOrLab,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: str | None = None,
) -> RetestList:
    """Discordant cases (pool positive, every member negative) for the lab and CDC to
    review; a lab sees the cases of pools it tested."""
    return await service.list_cases(
        session,
        principal,
        request.app.state.vault,
        request.app.state.settings,
        round_id=round_id,
        status="resolved",
        discordant_only=True,
        after=parse_cursor(cursor),
        limit=limit,
    )


@router.get("/rounds/{round_id}/retests/{case_id}", response_model=CaseDetail)
async def read_retest(
    round_id: Id32, case_id: Id64, request: Request, session: DbSession, principal: AdminOrSampler
) -> CaseDetail:
    """One case with its whole history: every change, who made it and when."""
    return await service.read_case(
        session,
        principal,
        request.app.state.vault,
        request.app.state.settings,
        round_id=round_id,
        case_id=case_id,
    )


@router.get("/rounds/{round_id}/advice", response_model=AdviceRead)
async def pool_size_advice(round_id: Id32, session: DbSession, _: AdminOnly) -> AdviceRead:
    """Per district: observed prevalence with a Wilson interval, Dorfman tests per person
    for pools of 1, 5, 10 and 20, the Ct shift of pooling, and the advised pool size."""
    return await service.pool_size_advice(session, round_id)


@router.get(
    "/rounds/{round_id}/retests/{case_id}/recall.pdf",
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}}, "description": "A4 recall sheet"}},
)
async def recall_sheet(
    round_id: Id32, case_id: Id64, request: Request, session: HeavySession, principal: AdminOnly
) -> Response:
    """The re-sampling squad's sheet: members' full names, phones and where they were
    swabbed. The one place these are shown in full; every download is audited."""
    pdf = await service.recall_sheet(
        session,
        principal,
        request.app.state.vault,
        round_id=round_id,
        case_id=case_id,
        zone=request.app.state.settings.zone,
    )
    return Response(
        pdf,
        media_type="application/pdf",
        headers={
            "Content-Disposition": f'inline; filename="recall-{round_id}-{case_id}.pdf"',
            "Cache-Control": "no-store",
        },
    )


@router.get(
    "/events",
    response_class=EventSourceResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "SSE stream"}},
)
async def events(
    request: Request,
    principal: AdminOrSampler,
    last_event_id: Annotated[str | None, Header()] = None,
    after: Annotated[
        int | None, Query(ge=0, le=INT64_MAX, description="resume after this event id")
    ] = None,
    round_id: Annotated[int | None, Query(alias="round", ge=1, le=INT32_MAX)] = None,
    limit: Annotated[int | None, Query(ge=1, le=100_000)] = None,
    max_seconds: Annotated[float | None, Query(gt=0, le=86_400)] = None,
) -> EventSourceResponse:
    """Live de-pooling events (Server-Sent Events): case-opened, member-resampled,
    member-resulted, case-resolved, case-overdue, member-overdue, in order. A sampler
    gets its own point's. Resumes after ``Last-Event-ID`` (or ``after``); a new stream
    starts from now. ``limit``/``max_seconds`` end the stream (long-poll clients)."""
    resume = after
    if resume is None and last_event_id is not None:
        resume = parse_cursor(last_event_id, where="header", name="Last-Event-ID")
    hub: feed.EventHub = request.app.state.event_hub
    start = await feed.start_after(hub.engine, resume)
    return EventSourceResponse(
        feed.stream(
            hub, principal, after=start, round_id=round_id, limit=limit, max_seconds=max_seconds
        ),
        sep=feed.SEP,
        ping=feed.KEEPALIVE_SECONDS,
    )
