"""Swabs into tubes, one scan at a time: the hot path.

The rules are :mod:`pooling.scan_rules` (the same the offline replay in
:mod:`screening.sampling.sync` uses). A scan costs, when nothing is refused: one
statement for its facts (round, person, tube, range, de-pool case, earlier tubes),
one to claim its ``event_id`` (when it has one), one to open a brand-new tube, and
one conditional ``UPDATE ... WHERE state = 'open' AND count < capacity`` that takes
the slot, stores the sample and links the event, so of many scans racing for a
tube's last slot exactly one wins. Lock order: see :mod:`screening.sampling.queries`.

An ``event_id`` is claimed in ``applied_events`` before anything is written, so the
same event sent twice, even concurrently, is applied once; a refused attempt rolls
its claim back with everything else.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from pooling.barcodes import BadBarcode as BadBarcodeValue
from pooling.barcodes import format_barcode, parse_barcode
from pooling.scan_rules import AlreadySampledRefusal, EarlierTube, Swab, swab_refusal
from pooling.tubes import (
    SampleRefused,
    TubeKind,
    TubeSlots,
    TubeState,
    capacity_for,
    pool_of_one,
)
from screening.db import retrying
from screening.errors import AppError, Conflict, Forbidden, NotFound, Unprocessable
from screening.privacy import Vault, mask_name
from screening.residents.codes import normalize_resident_code, why_not_resident_code
from screening.retests.service import actor_of, link_singles
from screening.rounds.service import RoundClosed
from screening.sampling import queries
from screening.sampling.events import earlier_json
from screening.sampling.schemas import SampleTaken, ScannedResident, TubeSealed
from screening.tokens.service import Principal


class BadBarcode(Unprocessable):
    type, title = "bad-barcode", "Bad tube barcode"


class BadResidentCode(Unprocessable):
    type, title = "bad-resident-code", "Bad resident code"


class UnknownResident(NotFound):
    type, title = "unknown-resident", "Unknown resident code"


class NeedsSingle(Conflict):
    type, title = "needs-single", "This person must be swabbed alone"


class AlreadySampled(Conflict):
    type, title = "already-sampled", "This person is already in a pool tube of this round"

    def __init__(self, detail: str, earlier: EarlierTube) -> None:
        super().__init__(detail)
        self.earlier = earlier

    def body(self) -> dict[str, Any]:
        return {**super().body(), "earlier": earlier_json(self.earlier)}


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


REFUSALS: dict[str, type[AppError]] = {
    "bad-barcode": BadBarcode,
    "bad-resident-code": BadResidentCode,
    "forbidden": Forbidden,
    "round-closed": RoundClosed,
    "unknown-resident": UnknownResident,
    "needs-single": NeedsSingle,
    "tube-full": TubeFull,
    "tube-sealed": TubeSealedError,
    "already-in-tube": AlreadyInTube,
    "tube-kind-mismatch": TubeKindMismatch,
    "tube-empty": TubeEmpty,
}


def as_error(refused: SampleRefused) -> AppError:
    """The problem document for a refusal of the pure rules."""
    if isinstance(refused, AlreadySampledRefusal):
        return AlreadySampled(refused.detail, refused.earlier)
    return REFUSALS[refused.type](refused.detail)


def parse_tube(barcode: str) -> int:
    try:
        return parse_barcode(barcode)
    except BadBarcodeValue as exc:
        raise BadBarcode(
            f"tube {barcode!r}: {exc}", errors=[{"loc": ["body", "tube"], "msg": str(exc)}]
        ) from None


def parse_resident_code(code: str) -> str:
    normalized = normalize_resident_code(code)
    why = why_not_resident_code(normalized)
    if why is not None:
        raise BadResidentCode(
            f"resident code {code!r}: {why}",
            errors=[{"loc": ["body", "resident_code"], "msg": why}],
        )
    return normalized


def check_scope(principal: Principal, point_id: int | None) -> None:
    if not may_use(principal, point_id):
        raise Forbidden("this tube belongs to another sampling point")


def may_use(principal: Principal, point_id: int | None) -> bool:
    return principal.role != "sampler" or principal.sampling_point_id == point_id


async def claim_event(
    session: AsyncSession, round_id: int, event_id: str, type_: str, serial: int
) -> Any | None:
    """Claim ``event_id``; None when it is new, else the stored outcome to replay."""
    claimed = await session.scalar(
        queries.CLAIM_EVENT,
        {"round_id": round_id, "event_id": event_id, "type": type_, "serial": serial},
    )
    if claimed is not None:
        return None
    previous = (
        await session.execute(queries.REPLAY, {"round_id": round_id, "event_id": event_id})
    ).first()
    assert previous is not None
    if previous.type != type_:
        raise EventReused(f"event {event_id!r} was a {previous.type} event")
    return previous


async def take_sample(
    session: AsyncSession,
    principal: Principal,
    vault: Vault,
    *,
    round_id: int,
    tube: str,
    resident_code: str,
    kind: str,
    event_id: str | None,
) -> SampleTaken:
    """Put one resident's swab into a tube; a full tube seals itself."""
    serial = parse_tube(tube)
    code = parse_resident_code(resident_code)
    return await retrying(
        session,
        lambda: _take_sample(
            session, principal, vault, round_id, serial, code, TubeKind(kind), event_id
        ),
    )


async def _take_sample(
    session: AsyncSession,
    principal: Principal,
    vault: Vault,
    round_id: int,
    serial: int,
    code: str,
    kind: TubeKind,
    event_id: str | None,
) -> SampleTaken:
    barcode = format_barcode(serial)
    ctx = (
        await session.execute(
            queries.SCAN_CONTEXT, {"round_id": round_id, "serial": serial, "code": code}
        )
    ).first()
    if ctx is None:
        raise NotFound(f"no round {round_id}")
    point = ctx.tube_point if ctx.tube_exists else ctx.range_point
    issued = point is not None and (not ctx.tube_exists or ctx.tube_round == round_id)
    if not issued:
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
                resident=_scanned(vault, previous.name_enc),
            )
    swab = Swab(
        barcode=barcode,
        kind=kind,
        issued=True,
        own_point=True,
        at=datetime.now(UTC),
        closed_at=ctx.closed_at if ctx.round_status != "open" else None,
        resident_id=ctx.resident_id,
        needs_single=bool(ctx.needs_single),
        earlier=(
            EarlierTube(ctx.earlier_tube, ctx.earlier_point, ctx.earlier_at)
            if ctx.earlier_tube is not None
            else None
        ),
        alone=pool_of_one(
            kind, ctx.tube_capacity if ctx.tube_exists else capacity_for(kind, ctx.district_pool)
        ),
    )
    slots = (
        TubeSlots(
            barcode,
            TubeKind(ctx.tube_kind),
            ctx.tube_capacity,
            ctx.tube_count,
            TubeState(ctx.tube_state),
            {ctx.resident_id} if ctx.member else set(),
        )
        if ctx.tube_exists
        else None
    )
    refused = swab_refusal(swab, slots)
    if refused is not None:
        raise as_error(refused)
    if not ctx.tube_exists:
        await session.execute(
            queries.CREATE_TUBE,
            {
                "serial": serial,
                "barcode": barcode,
                "round_id": round_id,
                "point": point,
                "kind": kind.value,
                "capacity": capacity_for(kind, ctx.district_pool),
            },
        )
    params = {
        "serial": serial,
        "round_id": round_id,
        "resident_id": ctx.resident_id,
        "kind": kind.value,
        "event_id": event_id,
    }
    row = (await session.execute(queries.TAKE_SLOT, params)).first()
    if row is None:
        raise await _refusal(session, serial, ctx.resident_id, kind)
    if kind is TubeKind.SINGLE:
        await link_singles(session, [row.id], actor_of(principal))
    return SampleTaken(
        tube=barcode,
        kind=kind.value,
        count=row.position,
        capacity=row.capacity,
        full=row.position >= row.capacity,
        resident=_scanned(vault, ctx.name_enc),
    )


def _scanned(vault: Vault, name_enc: bytes | None) -> ScannedResident | None:
    return ScannedResident(name_masked=mask_name(vault.decrypt(name_enc))) if name_enc else None


async def _refusal(
    session: AsyncSession, serial: int, resident_id: int, kind: TubeKind
) -> AppError:
    """Why the slot could not be taken after all (another scan got there first): the
    tube as it is now, read by the same rule. The caller raises it; the request rolls back."""
    now = (
        await session.execute(queries.TUBE_NOW, {"serial": serial, "resident_id": resident_id})
    ).one()
    slots = TubeSlots(
        now.barcode,
        TubeKind(now.kind),
        now.capacity,
        now.tube_count,
        TubeState(now.state),
        {resident_id} if now.member else set(),
    )
    refused = slots.refusal(resident_id, kind)
    if refused is None:  # the tube changed again since; the scan can simply be sent again
        return TubeSealedError(f"tube {now.barcode} changed while this scan was taken; scan again")
    return as_error(refused)


async def seal_tube(
    session: AsyncSession, principal: Principal, *, round_id: int, tube: str
) -> TubeSealed:
    """Seal by hand (also after the round closed: the last tubes of the day still go
    out). Sealing an already sealed tube answers as the first time did."""
    serial = parse_tube(tube)
    return await retrying(session, lambda: _seal_tube(session, principal, round_id, serial))


async def _seal_tube(
    session: AsyncSession, principal: Principal, round_id: int, serial: int
) -> TubeSealed:
    barcode = format_barcode(serial)
    row = (await session.execute(queries.LOCK_TUBE_FOR_SEAL, {"serial": serial})).first()
    if row is None or row.round_id != round_id:
        raise NotFound(f"tube {barcode} has no sample in round {round_id}")
    check_scope(principal, row.sampling_point_id)
    if row.state == "sealed":
        return TubeSealed(tube=barcode, count=row.tube_count)
    if row.state != "open":
        raise TubeSealedError(f"tube {barcode} is already {row.state}")
    count = await session.scalar(queries.SEAL, {"serial": serial, "round_id": round_id})
    if count is None:
        raise TubeEmpty(f"tube {barcode} holds no sample")
    return TubeSealed(tube=barcode, count=count)
