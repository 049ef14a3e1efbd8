from fastapi import APIRouter, Request

from screening.auth import AdminOnly
from screening.db import DbSession
from screening.progress import service
from screening.progress.schemas import Progress

router = APIRouter(tags=["command center"])


@router.get("/rounds/{round_id}/progress", response_model=Progress)
async def round_progress(
    round_id: int, request: Request, session: DbSession, _: AdminOnly
) -> Progress:
    """Where the round stands, by district, sampling point and lab: people swabbed
    against population, tubes by state, results by call, de-pool cases, confirmed
    positives, late boxes and sealed-to-result turnaround (p50, p95)."""
    return await service.round_progress(session, request.app.state.settings, round_id)
