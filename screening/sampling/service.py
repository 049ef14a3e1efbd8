"""Swabs into tubes: one scan at a time (the hot path), or a whole offline batch.

Both paths follow the rules of :mod:`pooling.tubes`. A single scan enforces them in
SQL with a conditional ``UPDATE ... WHERE state = 'open' AND count < capacity``, so
of many scans racing for a tube's last slot exactly one wins. A sync batch locks its
tubes (``FOR UPDATE``, in serial order) and replays its events in order through the
pure rules, then writes the outcome set-wise.

An ``event_id`` is claimed in ``applied_events`` before anything else is done, so the
same event sent twice, even concurrently, is applied once; a failed attempt rolls
its claim back with everything else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from pooling.barcodes import BadBarcode as BadBarcodeValue
from pooling.barcodes import format_barcode, parse_barcode
from pooling.tubes import TubeKind, capacity_for
from screening.errors import Conflict, Forbidden, NotFound, Unprocessable
from screening.privacy import Vault, mask_id_number, mask_name
from screening.retests.service import actor_of, link_singles
from screening.rounds.service import RoundClosed
from screening.sampling.schemas import MemberRead, SampleTaken, TubeRead, TubeSealed
from screening.tokens.service import Principal


class BadBarcode(Unprocessable):
    type, title = "bad-barcode", "Bad tube barcode"


class UnknownResident(NotFound):
    type, title = "unknown-resident", "Unknown resident code"


class TubeFull(Conflict):
    type, title = "tube-full", "The tube is full"


class TubeSealedError(Conflict):
    type, title = "tube-sealed", "The tube is sealed"


class AlreadyInTube(Conflict):
    type, title = "already-in-tube", "This person is already in the tube"


class TubeKindMismatch(Conflict):
    type, title = "tube-kind-mismatch", "The tube is of the other kind"


class TubeEmpty(Conflict):
    type, title = "tube-empty", "An empty tube cannot be sealed"


class EventReused(Conflict):
    type, title = "event-reused", "This event_id was used for another kind of event"


REFUSALS: dict[str, type[Conflict]] = {
    "tube-full": TubeFull,
    "tube-sealed": TubeSealedError,
    "already-in-tube": AlreadyInTube,
    "tube-kind-mismatch": TubeKindMismatch,
    "tube-empty": TubeEmpty,
}


def parse_tube(barcode: str) -> int:
    try:
        return parse_barcode(barcode)
    except BadBarcodeValue as exc:
        raise BadBarcode(
            f"tube {barcode!r}: {exc}", errors=[{"loc": ["body", "tube"], "msg": str(exc)}]
        ) from None


@dataclass(frozen=True, slots=True)
class TubeContext:
    """What a scan needs to know, fetched in one round trip."""

    round_status: str | None
    resident_id: int | None
    tube_exists: bool
    tube_round: int | None
    tube_point: int | None
    tube_kind: str | None
    range_point: int | None
    district_pool: int | None


_CONTEXT = text(
    """
    SELECT r.status AS round_status,
           (SELECT id FROM residents WHERE code = :code) AS resident_id,
           t.serial IS NOT NULL AS tube_exists, t.round_id AS tube_round,
           t.sampling_point_id AS tube_point, t.kind AS tube_kind,
           br.sampling_point_id AS range_point,
           COALESCE(rd.pool_size, r.pool_size) AS district_pool
    FROM rounds r
    LEFT JOIN tubes t ON t.serial = :serial
    LEFT JOIN LATERAL (
        SELECT sampling_point_id FROM barcode_ranges
        WHERE round_id = r.id AND first_serial <= :serial AND last_serial >= :serial
        LIMIT 1
    ) br ON true
    LEFT JOIN sampling_points sp ON sp.id = br.sampling_point_id
    LEFT JOIN round_districts rd ON rd.round_id = r.id AND rd.district_id = sp.district_id
    WHERE r.id = :round_id
    """
)

# Any unique key: two first scans racing into one new tube can meet on the barcode's
# index before the serial's (a tube's serial and barcode name each other), and only the
# conflict target steps aside; the other raised a unique violation, a 500.
_CREATE_TUBE = text(
    """
    INSERT INTO tubes (serial, barcode, round_id, sampling_point_id, kind, capacity, count, state)
    VALUES (:serial, :barcode, :round_id, :point, :kind, :capacity, 0, 'open')
    ON CONFLICT DO NOTHING
    """
)

_TAKE_SLOT = text(
    """
    WITH slot AS (
        UPDATE tubes SET count = count + 1,
               state = CASE WHEN count + 1 >= capacity THEN 'sealed' ELSE state END,
               sealed_at = CASE WHEN count + 1 >= capacity THEN now() ELSE sealed_at END
        WHERE serial = :serial AND state = 'open' AND count < capacity AND kind = :kind
        RETURNING serial, count, capacity
    )
    INSERT INTO samples (round_id, tube_serial, resident_id, kind, position)
    SELECT :round_id, serial, :resident_id, :kind, count FROM slot
    ON CONFLICT ON CONSTRAINT uq_samples_tube_resident DO NOTHING
    RETURNING id, position, (SELECT capacity FROM slot) AS capacity
    """
)

_WHY_REFUSED = text(
    """
    SELECT t.kind, t.state, t.count AS tube_count, t.capacity,
           EXISTS (SELECT 1 FROM samples s WHERE s.tube_serial = t.serial
                   AND s.resident_id = :resident_id) AS member
    FROM tubes t WHERE t.serial = :serial
    """
)

_CLAIM_EVENT = text(
    """
    INSERT INTO applied_events (round_id, event_id, type, tube_serial)
    VALUES (:round_id, :event_id, :type, :serial)
    ON CONFLICT DO NOTHING
    RETURNING event_id
    """
)

_REPLAY = text(
    """
    SELECT e.type, t.barcode, t.kind, t.capacity, t.count AS tube_count, s.position
    FROM applied_events e
    JOIN tubes t ON t.serial = e.tube_serial
    LEFT JOIN samples s ON s.id = e.sample_id
    WHERE e.round_id = :round_id AND e.event_id = :event_id
    """
)


async def claim_event(
    session: AsyncSession, round_id: int, event_id: str, type_: str, serial: int
) -> Any | None:
    """Claim ``event_id``; None when it is new, else the stored outcome to replay."""
    claimed = await session.scalar(
        _CLAIM_EVENT, {"round_id": round_id, "event_id": event_id, "type": type_, "serial": serial}
    )
    if claimed is not None:
        return None
    previous = (
        await session.execute(_REPLAY, {"round_id": round_id, "event_id": event_id})
    ).first()
    assert previous is not None
    if previous.type != type_:
        raise EventReused(f"event {event_id!r} was a {previous.type} event")
    return previous


def check_scope(principal: Principal, point_id: int | None) -> None:
    if principal.role == "sampler" and principal.sampling_point_id != point_id:
        raise Forbidden("this tube belongs to another sampling point")


async def load_context(
    session: AsyncSession, round_id: int, serial: int, resident_code: str
) -> TubeContext:
    row = (
        await session.execute(
            _CONTEXT, {"round_id": round_id, "serial": serial, "code": resident_code}
        )
    ).first()
    if row is None:
        raise NotFound(f"no round {round_id}")
    return TubeContext(**row._mapping)


async def take_sample(
    session: AsyncSession,
    principal: Principal,
    *,
    round_id: int,
    tube: str,
    resident_code: str,
    kind: str,
    event_id: str | None,
) -> SampleTaken:
    serial = parse_tube(tube)
    barcode = format_barcode(serial)
    tube_kind = TubeKind(kind)
    ctx = await load_context(session, round_id, serial, resident_code)
    point = ctx.tube_point if ctx.tube_exists else ctx.range_point
    if (ctx.tube_exists and ctx.tube_round != round_id) or point is None:
        raise BadBarcode(f"tube {barcode} was not issued for round {round_id}")
    check_scope(principal, point)
    if event_id is not None:
        previous = await claim_event(session, round_id, event_id, "sample", serial)
        if previous is not None:
            return SampleTaken(
                tube=previous.barcode,
                kind=previous.kind,
                count=previous.position,
                capacity=previous.capacity,
                full=previous.position >= previous.capacity,
            )
    if ctx.round_status != "open":
        raise RoundClosed(f"round {round_id} is closed")
    if ctx.resident_id is None:
        raise UnknownResident("no resident with this code; register them first")
    if not ctx.tube_exists:
        assert ctx.district_pool is not None
        await session.execute(
            _CREATE_TUBE,
            {
                "serial": serial,
                "barcode": barcode,
                "round_id": round_id,
                "point": point,
                "kind": tube_kind.value,
                "capacity": capacity_for(tube_kind, ctx.district_pool),
            },
        )
    params = {
        "serial": serial,
        "round_id": round_id,
        "resident_id": ctx.resident_id,
        "kind": tube_kind.value,
    }
    row = (await session.execute(_TAKE_SLOT, params)).first()
    if row is None:
        raise await _refusal(session, serial, barcode, ctx.resident_id, tube_kind)
    if tube_kind is TubeKind.SINGLE:
        await link_singles(session, [row.id], actor_of(principal))
    if event_id is not None:
        await session.execute(
            text(
                "UPDATE applied_events SET sample_id = :sample_id"
                " WHERE round_id = :round_id AND event_id = :event_id"
            ),
            {"sample_id": row.id, "round_id": round_id, "event_id": event_id},
        )
    return SampleTaken(
        tube=barcode,
        kind=tube_kind.value,
        count=row.position,
        capacity=row.capacity,
        full=row.position >= row.capacity,
    )


async def _refusal(
    session: AsyncSession, serial: int, barcode: str, resident_id: int, kind: TubeKind
) -> Conflict:
    """Why the slot could not be taken (the caller raises it and the request rolls back)."""
    why = (
        await session.execute(_WHY_REFUSED, {"serial": serial, "resident_id": resident_id})
    ).one()
    if why.member:
        return AlreadyInTube(f"this person is already in tube {barcode}")
    if why.kind != kind.value:
        return TubeKindMismatch(f"tube {barcode} is a {why.kind} tube")
    if why.tube_count >= why.capacity:
        return TubeFull(f"tube {barcode} already holds {why.tube_count} of {why.capacity}")
    return TubeSealedError(f"tube {barcode} is {why.state}")


_SEAL = text(
    """
    UPDATE tubes SET state = 'sealed', sealed_at = now()
    WHERE serial = :serial AND round_id = :round_id AND state = 'open' AND count > 0
    RETURNING count
    """
)


async def seal_tube(
    session: AsyncSession,
    principal: Principal,
    *,
    round_id: int,
    tube: str,
    event_id: str | None = None,
) -> TubeSealed:
    """Seal by hand. Sealing an already sealed tube answers as the first time did."""
    serial = parse_tube(tube)
    barcode = format_barcode(serial)
    row = (
        await session.execute(
            text(
                "SELECT t.round_id, t.sampling_point_id, t.state, t.count AS tube_count,"
                " (SELECT status FROM rounds WHERE id = :round_id) AS round_status"
                " FROM tubes t WHERE t.serial = :serial FOR UPDATE"
            ),
            {"serial": serial, "round_id": round_id},
        )
    ).first()
    if row is None or row.round_id != round_id:
        raise NotFound(f"tube {barcode} has no sample in round {round_id}")
    check_scope(principal, row.sampling_point_id)
    if event_id is not None:
        previous = await claim_event(session, round_id, event_id, "seal", serial)
        if previous is not None:
            return TubeSealed(tube=barcode, count=previous.tube_count)
    if row.state == "sealed":
        return TubeSealed(tube=barcode, count=row.tube_count)
    if row.state != "open":
        raise TubeSealedError(f"tube {barcode} is already {row.state}")
    if row.round_status != "open":
        raise RoundClosed(f"round {round_id} is closed")
    count = await session.scalar(_SEAL, {"serial": serial, "round_id": round_id})
    if count is None:
        raise TubeEmpty(f"tube {barcode} holds no sample")
    return TubeSealed(tube=barcode, count=count)


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


async def read_tube(
    session: AsyncSession, principal: Principal, vault: Vault, *, round_id: int, tube: str
) -> TubeRead:
    """A tube's state and its members, masked."""
    serial = parse_tube(tube)
    row = (await session.execute(_TUBE, {"serial": serial})).first()
    if row is None or row.round_id != round_id:
        raise NotFound(f"tube {format_barcode(serial)} has no sample in round {round_id}")
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
