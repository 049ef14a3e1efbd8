"""Creating and listing districts, sampling points and labs."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from screening.errors import Duplicate, NotFound
from screening.reference.models import District, Lab, SamplingPoint
from screening.reference.schemas import (
    DistrictCreate,
    DistrictRead,
    LabCreate,
    LabRead,
    LabUpdate,
    SamplingPointCreate,
    SamplingPointRead,
)


async def _insert_unique(
    session: AsyncSession, table: Any, values: dict[str, Any], what: str
) -> int:
    new_id = await session.scalar(
        pg_insert(table)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["code"])
        .returning(table.id)
    )
    if new_id is None:
        raise Duplicate(f"{what} {values['code']!r} already exists")
    return int(new_id)


async def district_id_by_code(session: AsyncSession, code: str) -> int:
    district_id = await session.scalar(select(District.id).where(District.code == code))
    if district_id is None:
        raise NotFound(f"no district {code!r}")
    return district_id


async def lab_id_by_code(session: AsyncSession, code: str) -> int:
    lab_id = await session.scalar(select(Lab.id).where(Lab.code == code))
    if lab_id is None:
        raise NotFound(f"no lab {code!r}")
    return lab_id


async def create_district(session: AsyncSession, body: DistrictCreate) -> DistrictRead:
    new_id = await _insert_unique(session, District, body.model_dump(), "district")
    return DistrictRead(id=new_id, **body.model_dump())


async def create_sampling_point(
    session: AsyncSession, body: SamplingPointCreate
) -> SamplingPointRead:
    values = body.model_dump(exclude={"district"})
    values["district_id"] = await district_id_by_code(session, body.district)
    new_id = await _insert_unique(session, SamplingPoint, values, "sampling point")
    return SamplingPointRead(id=new_id, **body.model_dump())


async def create_lab(session: AsyncSession, body: LabCreate) -> LabRead:
    new_id = await _insert_unique(session, Lab, body.model_dump(), "lab")
    return LabRead(id=new_id, **body.model_dump())


async def update_lab(session: AsyncSession, code: str, body: LabUpdate) -> LabRead:
    """Change a lab's name, capacity or kit; uploads from now on use the new kit (each
    upload keeps the kit it was called with)."""
    lab = await session.scalar(select(Lab).where(Lab.code == code).with_for_update())
    if lab is None:
        raise NotFound(f"no lab {code!r}")
    changes = body.model_dump(exclude_unset=True, exclude_none=True)
    for field, value in changes.items():
        setattr(lab, field, value)
    await session.flush()
    return LabRead(
        id=lab.id,
        code=lab.code,
        name=lab.name,
        daily_capacity_tubes=lab.daily_capacity_tubes,
        kit=lab.kit,
    )


async def list_districts(session: AsyncSession, *, after: int, limit: int) -> list[DistrictRead]:
    rows = await session.execute(
        select(District).where(District.id > after).order_by(District.id).limit(limit)
    )
    return [
        DistrictRead(id=d.id, code=d.code, name=d.name, population=d.population)
        for d in rows.scalars()
    ]


async def list_sampling_points(
    session: AsyncSession, *, after: int, limit: int
) -> list[SamplingPointRead]:
    rows = await session.execute(
        select(SamplingPoint, District.code)
        .join(District, District.id == SamplingPoint.district_id)
        .where(SamplingPoint.id > after)
        .order_by(SamplingPoint.id)
        .limit(limit)
    )
    return [
        SamplingPointRead(
            id=p.id,
            code=p.code,
            name=p.name,
            address=p.address,
            district=code,
            stations=p.stations,
            people_per_hour_per_station=p.people_per_hour_per_station,
        )
        for p, code in rows
    ]


async def list_labs(session: AsyncSession, *, after: int, limit: int) -> list[LabRead]:
    rows = await session.execute(select(Lab).where(Lab.id > after).order_by(Lab.id).limit(limit))
    return [
        LabRead(
            id=lab.id,
            code=lab.code,
            name=lab.name,
            daily_capacity_tubes=lab.daily_capacity_tubes,
            kit=lab.kit,
        )
        for lab in rows.scalars()
    ]
