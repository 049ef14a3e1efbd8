"""Rounds: creating, closing, planning, and issuing tube barcode ranges."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import anyio
from sqlalchemy import func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from pooling.barcodes import barcodes_for_range, format_barcode
from reports.labels import MAX_LABELS, render_label_sheet
from screening.db import release_connection
from screening.errors import Conflict, NotFound, Unprocessable
from screening.reference.models import District, Lab, SamplingPoint
from screening.rounds import planning
from screening.rounds.models import BarcodeRange, Round, RoundDistrict
from screening.rounds.schemas import (
    DistrictPlanRead,
    LabPlanRead,
    LabShareRead,
    PlanRead,
    RangeCreate,
    RangeIssued,
    RangeRead,
    RoundCreate,
    RoundRead,
)


class RoundClosed(Conflict):
    type, title = "round-closed", "The round is closed"


async def create_round(session: AsyncSession, body: RoundCreate) -> RoundRead:
    ids = dict(
        (
            await session.execute(
                select(District.code, District.id).where(District.code.in_(body.districts))
            )
        ).all()
    )
    unknown = [code for code in body.districts if code not in ids]
    if unknown:
        raise NotFound(f"no district {', '.join(map(repr, unknown))}")
    round_id = await session.scalar(
        insert(Round)
        .values(
            name=body.name,
            pool_size=body.pool_size,
            starts_at=body.starts_at,
            deadline=body.deadline,
        )
        .returning(Round.id)
    )
    assert round_id is not None
    await session.execute(
        insert(RoundDistrict),
        [
            {
                "round_id": round_id,
                "district_id": ids[code],
                "pool_size": body.pool_size_by_district.get(code, body.pool_size),
            }
            for code in body.districts
        ],
    )
    return await read_round(session, round_id)


async def get_round(session: AsyncSession, round_id: int) -> Round:
    """The round, or 404 not-found."""
    rnd = await session.get(Round, round_id)
    if rnd is None:
        raise NotFound(f"no round {round_id}")
    return rnd


async def read_round(session: AsyncSession, round_id: int) -> RoundRead:
    rnd = await get_round(session, round_id)
    rows = (
        await session.execute(
            select(District.code, RoundDistrict.pool_size)
            .join(District, District.id == RoundDistrict.district_id)
            .where(RoundDistrict.round_id == round_id)
            .order_by(District.code)
        )
    ).all()
    return RoundRead(
        id=rnd.id,
        name=rnd.name,
        pool_size=rnd.pool_size,
        status=rnd.status,
        districts=[code for code, _ in rows],
        starts_at=rnd.starts_at,
        deadline=rnd.deadline,
        pool_size_by_district={code: size for code, size in rows if size != rnd.pool_size},
        created_at=rnd.created_at,
        closed_at=rnd.closed_at,
    )


async def list_rounds(session: AsyncSession, *, after: int, limit: int) -> list[RoundRead]:
    ids = (
        await session.scalars(
            select(Round.id).where(Round.id > after).order_by(Round.id).limit(limit)
        )
    ).all()
    return [await read_round(session, round_id) for round_id in ids]


async def close_round(session: AsyncSession, round_id: int) -> RoundRead:
    """No more sampling: later scans answer ``round-closed``."""
    closed = await session.scalar(
        update(Round)
        .where(Round.id == round_id, Round.status == "open")
        .values(status="closed", closed_at=datetime.now(UTC))
        .returning(Round.id)
    )
    if closed is None:
        await read_round(session, round_id)  # 404 when it does not exist
    return await read_round(session, round_id)


async def plan_round(session: AsyncSession, round_id: int) -> PlanRead:
    rnd = await get_round(session, round_id)
    district_rows = (
        await session.execute(
            select(
                District.code,
                District.name,
                District.population,
                RoundDistrict.pool_size,
                func.count(SamplingPoint.id),
                func.coalesce(func.sum(SamplingPoint.stations), 0),
                func.coalesce(
                    func.sum(SamplingPoint.stations * SamplingPoint.people_per_hour_per_station), 0
                ),
            )
            .join(RoundDistrict, RoundDistrict.district_id == District.id)
            .outerjoin(SamplingPoint, SamplingPoint.district_id == District.id)
            .where(RoundDistrict.round_id == round_id)
            .group_by(District.id, RoundDistrict.pool_size)
            .order_by(District.code)
        )
    ).all()
    labs = (
        await session.execute(select(Lab.code, Lab.daily_capacity_tubes).order_by(Lab.id))
    ).all()
    names = {code: name for code, name, *_ in district_rows}
    plan = planning.plan_round(
        [
            planning.DistrictInput(
                code=code,
                population=population,
                sampling_points=points,
                stations=int(stations),
                hourly_capacity=float(hourly),
                pool_size=pool_size,
            )
            for code, _, population, pool_size, points, stations, hourly in district_rows
        ],
        [planning.LabInput(code=code, daily_capacity_tubes=cap) for code, cap in labs],
        rnd.starts_at,
        rnd.deadline,
    )
    return PlanRead(
        round_id=round_id,
        round_hours=plan.round_hours,
        sampling_window_hours=plan.sampling_window_hours,
        population=plan.population,
        tubes_needed=plan.tubes_needed,
        samplers_needed=plan.samplers_needed,
        lab_capacity=plan.lab_capacity,
        feasible=plan.feasible,
        districts=[
            DistrictPlanRead(
                district=d.code,
                name=names[d.code],
                population=d.population,
                pool_size=d.pool_size,
                sampling_points=d.sampling_points,
                stations=d.stations,
                hourly_capacity=d.hourly_capacity,
                hours_needed=d.hours_needed,
                tubes_needed=d.tubes_needed,
                samplers_needed=d.samplers_needed,
                lab_allocation=[LabShareRead(lab=s.lab, tubes=s.tubes) for s in d.lab_allocation],
                feasible=d.feasible,
                bottleneck=d.bottleneck,
            )
            for d in plan.districts
        ],
        labs=[
            LabPlanRead(lab=lab.lab, capacity=lab.capacity, allocated=lab.allocated)
            for lab in plan.labs
        ],
    )


async def issue_range(session: AsyncSession, round_id: int, body: RangeCreate) -> RangeIssued:
    """Issue ``count`` fresh consecutive serials to a sampling point for this round."""
    status = await session.scalar(select(Round.status).where(Round.id == round_id))
    if status is None:
        raise NotFound(f"no round {round_id}")
    if status != "open":
        raise RoundClosed(f"round {round_id} is closed")
    point_id = await session.scalar(
        select(SamplingPoint.id).where(SamplingPoint.code == body.sampling_point)
    )
    if point_id is None:
        raise NotFound(f"no sampling point {body.sampling_point!r}")
    # Ranges are issued rarely; one lock makes "the next free serial" race-free.
    await session.execute(text("LOCK TABLE barcode_ranges IN SHARE ROW EXCLUSIVE MODE"))
    last = await session.scalar(select(func.coalesce(func.max(BarcodeRange.last_serial), 0)))
    first = int(last or 0) + 1
    range_id = await session.scalar(
        insert(BarcodeRange)
        .values(
            round_id=round_id,
            sampling_point_id=point_id,
            first_serial=first,
            last_serial=first + body.count - 1,
        )
        .returning(BarcodeRange.id)
    )
    assert range_id is not None
    return RangeIssued(
        range_id=range_id,
        sampling_point=body.sampling_point,
        first=format_barcode(first),
        last=format_barcode(first + body.count - 1),
        count=body.count,
    )


async def read_range(session: AsyncSession, round_id: int, range_id: int) -> RangeRead:
    row = (
        await session.execute(
            select(BarcodeRange.first_serial, BarcodeRange.last_serial, SamplingPoint.code)
            .join(SamplingPoint, SamplingPoint.id == BarcodeRange.sampling_point_id)
            .where(BarcodeRange.id == range_id, BarcodeRange.round_id == round_id)
        )
    ).first()
    if row is None:
        raise NotFound(f"no barcode range {range_id} in round {round_id}")
    first, last, point = row
    return RangeRead(
        range_id=range_id,
        sampling_point=point,
        first=format_barcode(first),
        last=format_barcode(last),
        count=last - first + 1,
        barcodes=[format_barcode(s) for s in range(first, last + 1)],
    )


@dataclass(frozen=True, slots=True)
class LabelSheet:
    pdf: bytes
    part: int
    parts: int


class TooManyLabels(Unprocessable):
    type, title = "too-many-labels", "Too many labels for one sheet"


async def range_labels_pdf(
    session: AsyncSession, round_id: int, range_id: int, *, part: int | None, per_sheet: int
) -> LabelSheet:
    """One part of the range's label sheet (``per_sheet`` labels each; a range that
    fits is one part and needs no ``part``). Read, then the transaction ends and the
    connection goes back to the pool before rendering, which runs off the event loop."""
    row = (
        await session.execute(
            select(
                BarcodeRange.first_serial, BarcodeRange.last_serial, SamplingPoint.code, Round.name
            )
            .join(SamplingPoint, SamplingPoint.id == BarcodeRange.sampling_point_id)
            .join(Round, Round.id == BarcodeRange.round_id)
            .where(BarcodeRange.id == range_id, BarcodeRange.round_id == round_id)
        )
    ).first()
    if row is None:
        raise NotFound(f"no barcode range {range_id} in round {round_id}")
    first, last, point, round_name = row
    count = last - first + 1
    per_sheet = max(1, min(per_sheet, MAX_LABELS))
    parts = -(-count // per_sheet)
    if part is None and parts > 1:
        raise TooManyLabels(
            f"the range holds {count} labels, a sheet at most {per_sheet}:"
            f" ask for part=1 to part={parts}",
            errors=[{"loc": ["query", "part"], "msg": f"required: 1 to {parts}"}],
        )
    part = part or 1
    if part > parts:
        raise TooManyLabels(
            f"the range has {parts} part(s) of at most {per_sheet} labels, not {part}",
            errors=[{"loc": ["query", "part"], "msg": f"must be from 1 to {parts}"}],
        )
    start = first + (part - 1) * per_sheet
    codes = barcodes_for_range(start, min(per_sheet, last - start + 1))
    caption = f"{round_name} · {point}"
    await release_connection(session)
    pdf = await anyio.to_thread.run_sync(lambda: render_label_sheet(codes, caption=caption))
    return LabelSheet(pdf=pdf, part=part, parts=parts)
