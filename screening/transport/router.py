from fastapi import APIRouter, Request

from screening.auth import AdminOrLab, AdminOrSampler, AnyRole
from screening.db import DbSession
from screening.schemas import Id32
from screening.transport import receipt, service
from screening.transport.schemas import (
    BoxCreate,
    BoxRead,
    BoxReceipt,
    BoxReceive,
    RejectedTubeList,
)

router = APIRouter(tags=["transport"])


@router.post("/boxes", status_code=201, response_model=BoxRead)
async def pack_box(body: BoxCreate, session: DbSession, principal: AdminOrSampler) -> BoxRead:
    """Pack sealed tubes of one sampling point into a box bound for a lab."""
    return await service.pack_box(session, principal, body)


@router.get("/boxes/{barcode}", response_model=BoxRead)
async def read_box(barcode: str, session: DbSession, principal: AnyRole) -> BoxRead:
    """A box and its tube list."""
    return await service.read_box(session, principal, barcode)


@router.post("/boxes/{barcode}/dispatch", response_model=BoxRead)
async def dispatch_box(barcode: str, session: DbSession, principal: AdminOrSampler) -> BoxRead:
    """Hand the box over for transport."""
    return await service.dispatch_box(session, principal, barcode)


@router.post("/boxes/{barcode}/receive", response_model=BoxReceipt)
async def receive_box(
    barcode: str,
    request: Request,
    session: DbSession,
    principal: AdminOrLab,
    body: BoxReceive | None = None,
) -> BoxReceipt:
    """The box's lab receives it; scanned tubes are checked against the box list,
    unusable ones rejected (their people recalled)."""
    return await receipt.receive_box(
        session, principal, request.app.state.vault, barcode, body or BoxReceive()
    )


@router.get("/rounds/{round_id}/rejected-tubes", response_model=RejectedTubeList)
async def list_rejected_tubes(
    round_id: Id32, request: Request, session: DbSession, principal: AnyRole
) -> RejectedTubeList:
    """Tubes rejected at receipt and the people to sample again (masked); a sampler
    sees its own point's, a lab its own."""
    return await receipt.list_rejected(
        session, principal, request.app.state.vault, round_id=round_id
    )
