"""The lab receives a box (API.md Transport; v1.1 "Lab in the field").

- The box is the one with this barcode that was sent to **this** lab: boxes are
  reused, and a barcode packed again at a sampling point must not swallow the late
  tubes of its previous trip. A box still missing tubes is found first.
- Receipt never invents a tube the lab did not scan: without a scan list the box list
  is taken as scanned on the box's first receipt only; later receipts receive what is
  scanned, nothing else.
- A scanned tube that travelled in another box (or was left out of one) is taken into
  this lab's custody and named apart.
- ``rejected: [{tube, reason}]``: the tube is unusable (leaking, insufficient,
  damaged, unlabelled, other); it is ``rejected``, its people read ``invalid`` (sample
  again) and are listed for recall (:func:`list_rejected`).
- Results that came before the tube are applied now (:mod:`screening.results.held`).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY, BIGINT, TEXT
from sqlalchemy.ext.asyncio import AsyncSession

from pooling.barcodes import BadBarcode as BadBarcodeValue
from pooling.barcodes import format_barcode, parse_barcode
from screening.db import raw_connection
from screening.errors import Conflict, Forbidden, NotFound, Unprocessable
from screening.privacy import Vault, mask_id_number, mask_name, mask_phone
from screening.results.held import apply_held
from screening.retests.handover import TubeCall, after_results
from screening.retests.service import actor_of
from screening.tokens.service import Principal
from screening.transport.schemas import (
    BoxReceipt,
    BoxReceive,
    RecallMember,
    RejectedTube,
    RejectedTubeList,
)

_BOX = text("""
SELECT b.id, b.barcode, b.state, b.lab_id FROM boxes b
WHERE b.barcode = :barcode AND (CAST(:lab AS int) IS NULL OR b.lab_id = :lab)
ORDER BY EXISTS (SELECT 1 FROM tubes t WHERE t.box_id = b.id
                 AND t.state IN ('packed', 'in_transit')) DESC,
         (b.state <> 'packed') DESC, b.id DESC
LIMIT 1 FOR UPDATE OF b
""")

_TUBES = text("""
SELECT serial, barcode, state, box_id, lab_id FROM tubes
WHERE box_id = :box_id OR barcode = ANY(:codes)
ORDER BY serial FOR UPDATE
""").bindparams(bindparam("codes", type_=ARRAY(TEXT)))

_RECEIVE = text("""
UPDATE tubes SET state = 'received', received_at = now(), lab_id = :lab_id
WHERE serial = ANY(:serials) AND state IN ('packed', 'in_transit')
RETURNING serial
""").bindparams(bindparam("serials", type_=ARRAY(BIGINT)))

_REJECT = text("""
WITH moved AS (
    UPDATE tubes SET state = 'rejected', result_call = 'invalid', resulted_at = now(),
                     received_at = coalesce(received_at, now()), lab_id = :lab_id
    WHERE serial = ANY(:serials) AND state IN ('packed', 'in_transit', 'received')
    RETURNING serial, round_id, sampling_point_id, box_id
)
INSERT INTO tube_rejections (tube_serial, round_id, sampling_point_id, lab_id, box_id,
                             reason, actor)
SELECT m.serial, m.round_id, m.sampling_point_id, :lab_id, m.box_id, r.reason, :actor
FROM moved m JOIN unnest(:serials, :reasons) AS r(serial, reason) ON r.serial = m.serial
ON CONFLICT (tube_serial) DO NOTHING
RETURNING tube_serial
""").bindparams(bindparam("serials", type_=ARRAY(BIGINT)), bindparam("reasons", type_=ARRAY(TEXT)))

RECEIVABLE = ("packed", "in_transit")


def _normalized(code: str) -> str:
    try:
        return format_barcode(parse_barcode(code))
    except BadBarcodeValue:
        return code.strip()


async def _find_box(session: AsyncSession, principal: Principal, barcode: str) -> Any:
    lab = principal.lab_id if principal.role == "lab" else None
    box = (await session.execute(_BOX, {"barcode": barcode, "lab": lab})).first()
    if box is not None:
        return box
    other = (await session.execute(_BOX, {"barcode": barcode, "lab": None})).first()
    if other is None:
        raise NotFound(f"no box {barcode}")
    raise Forbidden("this box goes to another lab")


async def receive_box(
    session: AsyncSession, principal: Principal, vault: Vault, barcode: str, body: BoxReceive
) -> BoxReceipt:
    box = await _find_box(session, principal, barcode)
    scanned = None if body.tubes_scanned is None else [_normalized(c) for c in body.tubes_scanned]
    reasons = {_normalized(r.tube): r.reason for r in body.rejected}
    codes = sorted({*(scanned or []), *reasons})
    tubes = (await session.execute(_TUBES, {"box_id": box.id, "codes": codes})).all()
    by_code = {t.barcode: t for t in tubes}
    in_box = {t.barcode for t in tubes if t.box_id == box.id}
    unknown = [c for c in reasons if c not in by_code]
    if unknown:
        raise Unprocessable(
            f"rejected tube(s) {', '.join(unknown)} are not known",
            errors=[{"loc": ["body", "rejected"], "msg": f"unknown tube {c}"} for c in unknown],
        )
    settled = [c for c in reasons if by_code[c].state not in (*RECEIVABLE, "received", "rejected")]
    if settled:
        raise Conflict(
            f"tube(s) {', '.join(settled)} cannot be rejected: never boxed, or already tested"
        )
    if scanned is None:
        arriving = sorted(in_box) if box.state != "received" else []
    else:
        arriving = [c for c in scanned if c in by_code]
    # a tube that travelled in another box; a tube never boxed stays where it is
    custody = sorted(c for c in arriving if c not in in_box and by_code[c].state in RECEIVABLE)
    unexpected = sorted({c for c in scanned or [] if c not in in_box and c not in reasons})
    actor = actor_of(principal)
    received = (
        (
            await session.execute(
                _RECEIVE,
                {
                    "lab_id": box.lab_id,
                    "serials": [
                        by_code[c].serial
                        for c in arriving
                        if c not in reasons and (c in in_box or c in custody)
                    ],
                },
            )
        )
        .scalars()
        .all()
    )
    rejected = [c for c in reasons if by_code[c].state != "rejected"]
    if rejected:
        await session.execute(
            _REJECT,
            {
                "lab_id": box.lab_id,
                "serials": [by_code[c].serial for c in rejected],
                "reasons": [reasons[c] for c in rejected],
                "actor": actor,
            },
        )
    await session.execute(
        text("""UPDATE boxes SET state = 'received', received_at = COALESCE(received_at, now()),
                dispatched_at = COALESCE(dispatched_at, now()) WHERE id = :id"""),
        {"id": box.id},
    )
    applied = await apply_held(
        session, lab_id=box.lab_id, tube_serials=list(received), actor=f"{actor} receipt"
    )
    if rejected:
        conn = await raw_connection(session)
        await after_results(
            conn, [TubeCall(by_code[c].serial, "invalid") for c in rejected], f"{actor} receipt"
        )
    after = (
        await session.execute(
            text("SELECT barcode, state FROM tubes WHERE box_id = :id ORDER BY serial"),
            {"id": box.id},
        )
    ).all()
    missing = [code for code, state in after if state in ("packed", "in_transit")]
    rejected_here = [code for code, state in after if state == "rejected"]
    return BoxReceipt(
        expected=len(after),
        received=len(after) - len(missing) - len(rejected_here),
        missing=missing,
        unexpected=unexpected,
        taken_in=custody,
        rejected=await _rejected_tubes(session, vault, [by_code[c].serial for c in reasons]),
        results_applied=applied,
    )


_REJECTED = text("""
SELECT t.barcode, j.reason, j.rejected_at, l.code AS lab, p.code AS sampling_point,
       j.round_id, r.code, r.name_enc, r.id_enc, r.phone_enc,
       EXISTS (SELECT 1 FROM samples again WHERE again.resident_id = s.resident_id
               AND again.tube_serial <> s.tube_serial
               AND again.sampled_at >= j.rejected_at) AS resampled
FROM tube_rejections j
JOIN tubes t ON t.serial = j.tube_serial
JOIN labs l ON l.id = j.lab_id
JOIN sampling_points p ON p.id = j.sampling_point_id
JOIN samples s ON s.tube_serial = j.tube_serial
JOIN residents r ON r.id = s.resident_id
WHERE (CAST(:serials AS bigint[]) IS NULL OR j.tube_serial = ANY(:serials))
  AND (CAST(:round_id AS int) IS NULL OR j.round_id = :round_id)
  AND (CAST(:point AS int) IS NULL OR j.sampling_point_id = :point)
  AND (CAST(:lab AS int) IS NULL OR j.lab_id = :lab)
ORDER BY j.rejected_at, t.barcode, r.code
""").bindparams(bindparam("serials", type_=ARRAY(BIGINT)))


async def _rejected_tubes(
    session: AsyncSession,
    vault: Vault,
    serials: list[int] | None,
    *,
    round_id: int | None = None,
    point: int | None = None,
    lab: int | None = None,
) -> list[RejectedTube]:
    if serials == []:
        return []
    rows = (
        await session.execute(
            _REJECTED, {"serials": serials, "round_id": round_id, "point": point, "lab": lab}
        )
    ).all()
    tubes: dict[str, RejectedTube] = {}
    for row in rows:
        tube = tubes.setdefault(
            row.barcode,
            RejectedTube(
                tube=row.barcode,
                reason=row.reason,
                rejected_at=row.rejected_at,
                lab=row.lab,
                sampling_point=row.sampling_point,
                members=[],
            ),
        )
        tube.members.append(
            RecallMember(
                resident_code=row.code,
                name_masked=mask_name(vault.decrypt(row.name_enc)),
                id_masked=mask_id_number(vault.decrypt(row.id_enc)),
                phone_masked=mask_phone(vault.decrypt(row.phone_enc)) if row.phone_enc else None,
                status="resampled" if row.resampled else "to-recall",
            )
        )
    return list(tubes.values())


async def list_rejected(
    session: AsyncSession, principal: Principal, vault: Vault, *, round_id: int
) -> RejectedTubeList:
    """A round's tubes rejected at receipt, with the people to sample again (masked):
    a sampler sees its own point's, a lab its own."""
    found = await session.scalar(text("SELECT id FROM rounds WHERE id = :id"), {"id": round_id})
    if found is None:
        raise NotFound(f"no round {round_id}")
    items = await _rejected_tubes(
        session,
        vault,
        None,
        round_id=round_id,
        point=principal.sampling_point_id if principal.role == "sampler" else None,
        lab=principal.lab_id if principal.role == "lab" else None,
    )
    return RejectedTubeList(items=items)
