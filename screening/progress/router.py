from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response

from screening.auth import AdminOnly
from screening.db import ReadSession
from screening.limits import HeavySlot
from screening.progress import points, recent, report, service
from screening.progress.schemas import PointPacePage, Progress, RecentEvents
from screening.schemas import Id32

router = APIRouter(tags=["command center"])


@router.get("/rounds/{round_id}/progress", response_model=Progress)
async def round_progress(
    round_id: Id32,
    request: Request,
    session: ReadSession,
    _: AdminOnly,
    points_limit: Annotated[int, Query(ge=1, le=5000)] = 100,
    points_after: Annotated[str, Query(max_length=32)] = "",
) -> Progress:
    """Where the round stands, by district, sampling point and lab: people swabbed
    against population, tubes by state, results by call, de-pool cases, confirmed
    positives, late boxes and sealed-to-result turnaround (p50, p95). Sampling points
    come a page at a time (a city has thousands)."""
    return await service.round_progress(
        session,
        request.app.state.settings,
        round_id,
        points_after=points_after,
        points_limit=points_limit,
    )


@router.get(
    "/rounds/{round_id}/report.pdf",
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}}, "description": "A4 round report"}},
)
async def round_report(
    round_id: Id32, request: Request, _slot: HeavySlot, session: ReadSession, _: AdminOnly
) -> Response:
    """The round's report: headline figures, districts, labs, turnaround and progress
    charts, de-pool cases and confirmed positives (masked)."""
    pdf = await report.round_report_pdf(
        session, request.app.state.settings, request.app.state.vault, round_id
    )
    return Response(
        pdf,
        media_type="application/pdf",
        headers={"Content-Disposition": f'inline; filename="round-{round_id}-report.pdf"'},
    )


@router.get("/rounds/{round_id}/progress/sampling-points", response_model=PointPacePage)
async def sampling_point_pace(
    round_id: Id32,
    request: Request,
    session: ReadSession,
    _: AdminOnly,
    order: Literal["lag", "code"] = "lag",
    limit: Annotated[int, Query(ge=1, le=1000)] = 20,
    cursor: Annotated[str | None, Query(max_length=20)] = None,
) -> PointPacePage:
    """The round's sampling points against their share of the district, laggards first:
    people swabbed, expected by now (even pace through the sampling window), tubes not
    yet boxed, late boxes; ``lagging`` when under 80% of the pace or a box is late."""
    return await points.points_by_pace(
        session, request.app.state.settings, round_id, order=order, limit=limit, cursor=cursor
    )


@router.get("/rounds/{round_id}/events/recent", response_model=RecentEvents)
async def recent_events(
    round_id: Id32,
    session: ReadSession,
    _: AdminOnly,
    limit: Annotated[int, Query(ge=1, le=200)] = 30,
) -> RecentEvents:
    """The round's newest de-pooling events (newest first) and the id to follow the
    live feed from (``GET /events?after=last_id``), for a screen that has just opened."""
    return await recent.recent_events(session, round_id, limit=limit)
