from typing import Annotated

from fastapi import APIRouter, Query

from screening.auth import AdminOnly, AnyRole
from screening.db import DbSession
from screening.reference import service
from screening.reference.schemas import (
    DistrictCreate,
    DistrictRead,
    LabCreate,
    LabRead,
    LabUpdate,
    SamplingPointCreate,
    SamplingPointRead,
)
from screening.schemas import Page, page_of, parse_cursor

router = APIRouter(tags=["reference data"])

LimitQ = Annotated[int, Query(ge=1, le=1000)]


@router.post("/districts", status_code=201, response_model=DistrictRead)
async def create_district(body: DistrictCreate, session: DbSession, _: AdminOnly) -> DistrictRead:
    """Add a district with its population."""
    return await service.create_district(session, body)


@router.get("/districts", response_model=Page[DistrictRead])
async def list_districts(
    session: DbSession, _: AnyRole, limit: LimitQ = 100, cursor: str | None = None
) -> Page[DistrictRead]:
    """List districts."""
    items = await service.list_districts(session, after=parse_cursor(cursor), limit=limit)
    return page_of(items, limit, items[-1].id if items else None)


@router.post("/sampling-points", status_code=201, response_model=SamplingPointRead)
async def create_sampling_point(
    body: SamplingPointCreate, session: DbSession, _: AdminOnly
) -> SamplingPointRead:
    """Add a sampling point (its address is where its tubes are bound)."""
    return await service.create_sampling_point(session, body)


@router.get("/sampling-points", response_model=Page[SamplingPointRead])
async def list_sampling_points(
    session: DbSession, _: AnyRole, limit: LimitQ = 100, cursor: str | None = None
) -> Page[SamplingPointRead]:
    """List sampling points."""
    items = await service.list_sampling_points(session, after=parse_cursor(cursor), limit=limit)
    return page_of(items, limit, items[-1].id if items else None)


@router.post("/labs", status_code=201, response_model=LabRead)
async def create_lab(body: LabCreate, session: DbSession, _: AdminOnly) -> LabRead:
    """Add a lab with its daily capacity and kit settings."""
    return await service.create_lab(session, body)


@router.patch("/labs/{code}", response_model=LabRead)
async def update_lab(code: str, body: LabUpdate, session: DbSession, _: AdminOnly) -> LabRead:
    """Change a lab's name, daily capacity or kit (the kit is checked like at creation)."""
    return await service.update_lab(session, code, body)


@router.get("/labs", response_model=Page[LabRead])
async def list_labs(
    session: DbSession, _: AnyRole, limit: LimitQ = 100, cursor: str | None = None
) -> Page[LabRead]:
    """List labs."""
    items = await service.list_labs(session, after=parse_cursor(cursor), limit=limit)
    return page_of(items, limit, items[-1].id if items else None)
