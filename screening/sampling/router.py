from typing import Any

from fastapi import APIRouter, Request

from screening import metrics
from screening.auth import AdminOrSampler
from screening.db import DbSession
from screening.privacy import Vault
from screening.sampling import reading, service, sync
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


def _problems(*described: tuple[int, str]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for problem documents, by status (one line per type)."""
    merged: dict[int, list[str]] = {}
    for status, text in described:
        merged.setdefault(status, []).append(text)
    return {
        status: {
            "description": "; ".join(texts),
            "content": {"application/problem+json": {}},
        }
        for status, texts in merged.items()
    }


def _vault(request: Request) -> Vault:
    vault: Vault = request.app.state.vault
    return vault


@router.post(
    "/rounds/{round_id}/samples",
    status_code=201,
    response_model=SampleTaken,
    responses=_problems(
        (422, "bad-barcode: misread, or not issued for this round"),
        (422, "bad-resident-code: the code's check character is wrong"),
        (403, "forbidden: the tube belongs to another sampling point"),
        (404, "unknown-resident"),
        (409, "round-closed: the round closed before this swab"),
        (409, "needs-single: an open de-pool case; swab them alone in a single tube"),
        (409, "already-sampled: in another live pool tube of this round (`earlier` names it)"),
        (409, "already-in-tube, tube-kind-mismatch, tube-full, tube-sealed"),
        (503, "database-unavailable: busy or unreachable; send again after Retry-After"),
    ),
)
async def take_sample(
    round_id: Id32,
    body: SampleCreate,
    request: Request,
    session: DbSession,
    principal: AdminOrSampler,
) -> SampleTaken:
    """Put one resident's swab into a tube (a full tube seals itself); refusals are
    checked in the order of pooling.scan_rules."""
    return await service.take_sample(
        session,
        principal,
        _vault(request),
        round_id=round_id,
        tube=body.tube,
        resident_code=body.resident_code,
        kind=body.kind,
        event_id=body.event_id,
        in_transaction=request.app.state.settings.database_pooler,
    )


@router.post("/rounds/{round_id}/tubes/{tube}/seal", response_model=TubeSealed)
async def seal_tube(
    round_id: Id32, tube: str, session: DbSession, principal: AdminOrSampler
) -> TubeSealed:
    """Seal a tube by hand (before it is full; also after the round closed)."""
    return await service.seal_tube(session, principal, round_id=round_id, tube=tube)


@router.post(
    "/rounds/{round_id}/sync",
    response_model=SyncAnswer,
    response_model_exclude_none=True,
    responses=_problems(
        (422, "invalid-request: not a JSON object with an events list, or over 5,000 events"),
    ),
)
async def sync_events(
    round_id: Id32,
    body: SyncBatch,
    request: Request,
    session: DbSession,
    principal: AdminOrSampler,
) -> SyncAnswer:
    """Apply a batch of offline scans in order; each event_id counts once, and each
    event is applied, a duplicate, or rejected alone with its reason."""
    answer = await sync.apply_sync(session, principal, _vault(request), round_id, body.events)
    metrics.count_sync(answer.applied, answer.duplicates, len(answer.rejected))
    return answer


@router.get(
    "/rounds/{round_id}/tubes/{tube}",
    response_model=TubeRead,
    responses=_problems(
        (422, "bad-barcode: misread, or not issued for this round"),
        (403, "forbidden: the tube belongs to another sampling point"),
    ),
)
async def read_tube(
    round_id: Id32, tube: str, request: Request, session: DbSession, principal: AdminOrSampler
) -> TubeRead:
    """A tube: state, members (masked), result; `unused` for an issued barcode of the
    caller's point not scanned yet (what the station asks at the tube scan)."""
    return await reading.read_tube(
        session, principal, _vault(request), round_id=round_id, tube=tube
    )
