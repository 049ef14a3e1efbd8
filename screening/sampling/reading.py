"""Reading one tube (``GET /rounds/{id}/tubes/{tube}``), also before its first swab.

The station asks when a tube is scanned, before any resident: a barcode issued to the
sampler's own point for this round and not used yet answers ``state: "unused"`` (so
the page can take it), another point's barcode is ``403 forbidden``, and a barcode not
issued for this round is ``422 bad-barcode``: refused at the tube scan, not only later
at the first resident.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from pooling.barcodes import format_barcode
from pooling.tubes import TubeKind, capacity_for
from screening.errors import NotFound
from screening.privacy import Vault, mask_id_number, mask_name
from screening.sampling.schemas import MemberRead, TubeRead
from screening.sampling.service import BadBarcode, check_scope, parse_tube
from screening.tokens.service import Principal

_TUBE = text(
    """
    SELECT t.barcode, t.round_id, t.kind, t.state, t.count AS tube_count, t.capacity, t.opened_at,
           t.sealed_at, t.received_at, t.sampling_point_id, sp.code AS point_code,
           sp.address AS point_address, b.barcode AS box, l.code AS lab,
           res.call, res.version, res.resulted_at, res.plate, res.well, res.ct
    FROM tubes t
    LEFT JOIN results res ON res.tube_serial = t.serial AND res.version = t.result_version
    JOIN sampling_points sp ON sp.id = t.sampling_point_id
    LEFT JOIN boxes b ON b.id = t.box_id
    LEFT JOIN labs l ON l.id = COALESCE(t.lab_id, b.lab_id)
    WHERE t.serial = :serial
    """
)

_TUBE_MEMBERS = text(
    """
    SELECT s.position, s.sampled_at, r.code, r.id_enc, r.name_enc
    FROM samples s JOIN residents r ON r.id = s.resident_id
    WHERE s.tube_serial = :serial ORDER BY s.position
    """
)

_UNUSED = text(
    """
    SELECT br.sampling_point_id, sp.code AS point_code, sp.address AS point_address,
           COALESCE(rd.pool_size, r.pool_size) AS pool_size
    FROM rounds r
    LEFT JOIN barcode_ranges br ON br.round_id = r.id
         AND br.first_serial <= :serial AND br.last_serial >= :serial
    LEFT JOIN sampling_points sp ON sp.id = br.sampling_point_id
    LEFT JOIN round_districts rd ON rd.round_id = r.id AND rd.district_id = sp.district_id
    WHERE r.id = :round_id
    """
)


async def read_tube(
    session: AsyncSession, principal: Principal, vault: Vault, *, round_id: int, tube: str
) -> TubeRead:
    """A tube's state and its members, masked; an issued tube not used yet is ``unused``."""
    serial = parse_tube(tube)
    barcode = format_barcode(serial)
    row = (await session.execute(_TUBE, {"serial": serial})).first()
    if row is None:
        return await _unused(session, principal, round_id, serial)
    if row.round_id != round_id:
        raise BadBarcode(f"tube {barcode} was not issued for round {round_id}")
    check_scope(principal, row.sampling_point_id)
    members = [
        MemberRead(
            position=m.position,
            resident_code=m.code,
            sampled_at=m.sampled_at,
            name_masked=mask_name(vault.decrypt(m.name_enc)),
            id_masked=mask_id_number(vault.decrypt(m.id_enc)),
        )
        for m in (await session.execute(_TUBE_MEMBERS, {"serial": serial})).all()
    ]
    return TubeRead(
        tube=row.barcode,
        round_id=row.round_id,
        kind=row.kind,
        state=row.state,
        count=row.tube_count,
        capacity=row.capacity,
        sampling_point=row.point_code,
        sampling_point_address=row.point_address,
        opened_at=row.opened_at,
        sealed_at=row.sealed_at,
        box=row.box,
        lab=row.lab,
        received_at=row.received_at,
        members=members,
        result=(
            {
                "call": row.call,
                "version": row.version,
                "resulted_at": row.resulted_at,
                "plate": row.plate,
                "well": row.well,
                "ct": row.ct,
            }
            if row.call is not None
            else None
        ),
    )


async def _unused(
    session: AsyncSession, principal: Principal, round_id: int, serial: int
) -> TubeRead:
    barcode = format_barcode(serial)
    issued = (await session.execute(_UNUSED, {"round_id": round_id, "serial": serial})).first()
    if issued is None:
        raise NotFound(f"no round {round_id}")
    if issued.sampling_point_id is None:
        raise BadBarcode(f"tube {barcode} was not issued for round {round_id}")
    check_scope(principal, issued.sampling_point_id)
    return TubeRead(
        tube=barcode,
        round_id=round_id,
        kind=None,
        state="unused",
        count=0,
        capacity=capacity_for(TubeKind.POOL, issued.pool_size),
        sampling_point=issued.point_code,
        sampling_point_address=issued.point_address,
        opened_at=None,
        sealed_at=None,
        box=None,
        lab=None,
        received_at=None,
        members=[],
    )
