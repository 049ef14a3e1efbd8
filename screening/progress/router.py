from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from screening.auth import AdminOnly
from screening.db import ReadSession
from screening.limits import HeavySlot
from screening.progress import report, service
from screening.progress.schemas import Progress
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
