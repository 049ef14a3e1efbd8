from fastapi import APIRouter

from screening.auth import AdminOrLab, AdminOrSampler, AnyRole
from screening.db import DbSession
from screening.transport import service
from screening.transport.schemas import BoxCreate, BoxRead, BoxReceipt, BoxReceive

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
    barcode: str, session: DbSession, principal: AdminOrLab, body: BoxReceive | None = None
) -> BoxReceipt:
    """The box's lab receives it; scanned tubes are checked against the box list."""
    return await service.receive_box(
        session, principal, barcode, body.tubes_scanned if body else None
    )
