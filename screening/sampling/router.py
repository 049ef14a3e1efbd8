from fastapi import APIRouter, Request

from screening import metrics
from screening.auth import AdminOrSampler
from screening.db import DbSession
from screening.sampling import service, sync
from screening.sampling.schemas import (
    SampleCreate,
    SampleTaken,
    SyncAnswer,
    SyncBatch,
    TubeRead,
    TubeSealed,
)
from screening.schemas import Id32

router = APIRouter(tags=["sampling"])


@router.post("/rounds/{round_id}/samples", status_code=201, response_model=SampleTaken)
async def take_sample(
    round_id: Id32, body: SampleCreate, session: DbSession, principal: AdminOrSampler
) -> SampleTaken:
    """Put one resident's swab into a tube (a full tube seals itself)."""
    return await service.take_sample(
        session,
        principal,
        round_id=round_id,
        tube=body.tube,
        resident_code=body.resident_code,
        kind=body.kind,
        event_id=body.event_id,
    )


@router.post("/rounds/{round_id}/tubes/{tube}/seal", response_model=TubeSealed)
async def seal_tube(
    round_id: Id32, tube: str, session: DbSession, principal: AdminOrSampler
) -> TubeSealed:
    """Seal a tube by hand (before it is full)."""
    return await service.seal_tube(session, principal, round_id=round_id, tube=tube)


@router.post("/rounds/{round_id}/sync", response_model=SyncAnswer)
async def sync_events(
    round_id: Id32, body: SyncBatch, session: DbSession, principal: AdminOrSampler
) -> SyncAnswer:
    """Apply a batch of offline scans in order; each event_id counts once."""
    answer = await sync.apply_sync(session, principal, round_id, body.events)
    metrics.count_sync(answer.applied, answer.duplicates, len(answer.rejected))
    return answer


@router.get("/rounds/{round_id}/tubes/{tube}", response_model=TubeRead)
async def read_tube(
    round_id: Id32, tube: str, request: Request, session: DbSession, principal: AdminOrSampler
) -> TubeRead:
    """A tube: state, members (masked), result."""
    return await service.read_tube(
        session, principal, request.app.state.vault, round_id=round_id, tube=tube
    )
