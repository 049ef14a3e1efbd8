"""Boxes: packing sealed tubes, dispatching them, and the lab's receipt.

A tube is in one box at a time. A box barcode is reused only once every tube of its
last trip has arrived. The lab's receipt is in :mod:`screening.transport.receipt`.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, select, text
from sqlalchemy.dialects.postgresql import ARRAY, BIGINT
from sqlalchemy.ext.asyncio import AsyncSession

from pooling.barcodes import BadBarcode as BadBarcodeValue
from pooling.barcodes import format_barcode, parse_barcode
from screening.errors import Conflict, Duplicate, Forbidden, NotFound
from screening.reference.models import Lab
from screening.sampling.service import BadBarcode
from screening.tokens.service import Principal
from screening.transport.schemas import BoxCreate, BoxRead


class TubeNotSealed(Conflict):
    type, title = "tube-not-sealed", "Only sealed tubes go into a box"


class TubeInAnotherBox(Conflict):
    type, title = "tube-in-box", "The tube is already in a box"


class BoxState(Conflict):
    type, title = "box-state", "The box cannot do that in its state"


_LOCK_TUBES = text(
    """
    SELECT serial, barcode, sampling_point_id, state, box_id FROM tubes
    WHERE serial = ANY(:serials) ORDER BY serial FOR UPDATE
    """
).bindparams(bindparam("serials", type_=ARRAY(BIGINT)))

_BOX = text(
    """
    SELECT b.id, b.barcode, b.state, b.sampling_point_id, b.lab_id, b.packed_at,
           b.dispatched_at, b.received_at, l.code AS lab, sp.code AS sampling_point
    FROM boxes b JOIN labs l ON l.id = b.lab_id
    JOIN sampling_points sp ON sp.id = b.sampling_point_id
    WHERE b.barcode = :barcode ORDER BY b.id DESC LIMIT 1 FOR UPDATE OF b
    """
)


# a received box whose tubes did not all arrive is still open: reusing its barcode
# would strand the late ones
_BOX_STILL_OPEN = text("""
SELECT EXISTS (SELECT 1 FROM boxes b JOIN tubes t ON t.box_id = b.id
               WHERE b.barcode = :barcode AND t.state IN ('packed', 'in_transit'))
""")


def _serials(barcodes: list[str]) -> list[int]:
    errors, serials = [], []
    for i, code in enumerate(barcodes):
        try:
            serials.append(parse_barcode(code))
        except BadBarcodeValue as exc:
            errors.append({"loc": ["body", "tubes", i], "msg": f"{code!r}: {exc}"})
    if errors:
        raise BadBarcode(f"{len(errors)} tube barcode(s) cannot be read", errors=errors)
    return serials


async def pack_box(session: AsyncSession, principal: Principal, body: BoxCreate) -> BoxRead:
    serials = sorted(set(_serials(body.tubes)))
    lab_id = await session.scalar(select(Lab.id).where(Lab.code == body.lab))
    if lab_id is None:
        raise NotFound(f"no lab {body.lab!r}")
    tubes = (await session.execute(_LOCK_TUBES, {"serials": serials})).all()
    found = {t.serial for t in tubes}
    unknown = [format_barcode(s) for s in serials if s not in found]
    if unknown:
        raise NotFound(f"no sample was taken in tube(s) {', '.join(unknown)}")
    points = {t.sampling_point_id for t in tubes}
    if principal.role == "sampler" and points != {principal.sampling_point_id}:
        raise Forbidden("a box holds tubes of your own sampling point only")
    if len(points) != 1:
        raise Conflict("a box holds tubes of one sampling point")
    boxed = [t.barcode for t in tubes if t.box_id is not None]
    if boxed:
        raise TubeInAnotherBox(f"already in a box: {', '.join(boxed)}")
    unsealed = [t.barcode for t in tubes if t.state != "sealed"]
    if unsealed:
        raise TubeNotSealed(f"not sealed: {', '.join(unsealed)}")
    if await session.scalar(_BOX_STILL_OPEN, {"barcode": body.barcode}):
        raise Duplicate(
            f"box {body.barcode} still has tubes on their way from its last trip; use another box"
        )
    box_id = await session.scalar(
        text("""INSERT INTO boxes (barcode, sampling_point_id, lab_id, state)
                VALUES (:barcode, :point, :lab_id, 'packed')
                ON CONFLICT (barcode) WHERE state <> 'received' DO NOTHING RETURNING id"""),
        {"barcode": body.barcode, "point": points.pop(), "lab_id": lab_id},
    )
    if box_id is None:
        raise Duplicate(f"box {body.barcode} is already in use (packed or on its way)")
    await session.execute(
        text(
            "UPDATE tubes SET state = 'packed', box_id = :box_id WHERE serial = ANY(:serials)"
        ).bindparams(bindparam("serials", type_=ARRAY(BIGINT))),
        {"box_id": box_id, "serials": serials},
    )
    return await read_box(session, principal, body.barcode)


async def _box(session: AsyncSession, barcode: str) -> Any:
    box = (await session.execute(_BOX, {"barcode": barcode})).first()
    if box is None:
        raise NotFound(f"no box {barcode}")
    return box


async def _box_tubes(session: AsyncSession, box_id: int) -> list[tuple[int, str, str]]:
    rows = await session.execute(
        text("SELECT serial, barcode, state FROM tubes WHERE box_id = :box_id ORDER BY serial"),
        {"box_id": box_id},
    )
    return [(serial, code, state) for serial, code, state in rows.all()]


async def read_box(session: AsyncSession, principal: Principal, barcode: str) -> BoxRead:
    box: Any = await _box(session, barcode)
    if principal.role == "sampler" and box.sampling_point_id != principal.sampling_point_id:
        raise Forbidden("this box belongs to another sampling point")
    if principal.role == "lab" and box.lab_id != principal.lab_id:
        raise Forbidden("this box goes to another lab")
    tubes = await _box_tubes(session, box.id)
    return BoxRead(
        barcode=box.barcode,
        lab=box.lab,
        sampling_point=box.sampling_point,
        state=box.state,
        tubes=[code for _, code, _ in tubes],
        packed_at=box.packed_at,
        dispatched_at=box.dispatched_at,
        received_at=box.received_at,
    )


async def dispatch_box(session: AsyncSession, principal: Principal, barcode: str) -> BoxRead:
    """Send the box on its way. Pressing dispatch twice changes nothing."""
    box: Any = await _box(session, barcode)
    if principal.role == "sampler" and box.sampling_point_id != principal.sampling_point_id:
        raise Forbidden("this box belongs to another sampling point")
    if box.state == "received":
        raise BoxState(f"box {barcode} was already received by the lab")
    if box.state == "packed":
        await session.execute(
            text("UPDATE boxes SET state = 'in_transit', dispatched_at = now() WHERE id = :id"),
            {"id": box.id},
        )
        await session.execute(
            text("UPDATE tubes SET state = 'in_transit' WHERE box_id = :id AND state = 'packed'"),
            {"id": box.id},
        )
    return await read_box(session, principal, barcode)
