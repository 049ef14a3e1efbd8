"""Swabs into tubes, one scan at a time: the hot path.

The rules are :mod:`pooling.scan_rules` (the same the offline replay in
:mod:`screening.sampling.sync` uses). A scan costs, when nothing is refused, two
statements sent on the asyncpg connection itself (issue 15: each round trip through
SQLAlchemy cost the service more CPU than PostgreSQL spent on the statement): one
for its facts (round, person, tube, range, de-pool case, earlier tubes, whether its
``event_id`` was applied before), and one call of ``scan_take_slot`` (migration
0010) that claims the ``event_id``, opens a brand-new tube, and takes the slot with
a conditional ``UPDATE ... WHERE state = 'open' AND count < capacity``, so of many
scans racing for a tube's last slot exactly one wins. Lock order: see
:mod:`screening.sampling.queries`.

An ``event_id`` is claimed in ``applied_events`` in the same statement that writes
the sample, so the same event sent twice, even concurrently, is applied once (the
second waits for the first's claim and answers as it did); a refused attempt leaves
no claim, no tube and no count behind.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import asyncpg
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
from screening.db import (
    BROKEN_CONNECTION,
    Db,
    driver_connection,
    invalidate,
    raw_connection,
    retrying,
)
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


async def take_sample(
    session: Db,
    principal: Principal,
    vault: Vault,
    *,
    round_id: int,
    tube: str,
    resident_code: str,
    kind: str,
    event_id: str | None,
    in_transaction: bool = False,
) -> SampleTaken:
    """Put one resident's swab into a tube; a full tube seals itself.

    Two statements on the asyncpg connection itself, outside a transaction: the facts,
    then the write (``scan_take_slot``, atomic on its own). Inside one instead when the
    scan must be atomic with more (a single tube links the de-pool case), when
    ``in_transaction`` (PgBouncer in transaction mode cannot hold a statement between
    two transactions), or when the request already opened one (a token looked up)."""
    serial = parse_tube(tube)
    code = parse_resident_code(resident_code)
    swab_kind = TubeKind(kind)
    pinned = in_transaction or swab_kind is TubeKind.SINGLE

    async def attempt() -> SampleTaken:
        conn = await (raw_connection(session) if pinned else driver_connection(session))
        return await _take_sample(
            session, conn, principal, vault, round_id, serial, code, swab_kind, event_id
        )

    try:
        return await retrying(session, attempt)
    except BROKEN_CONNECTION:
        await invalidate(session)
        raise


async def _take_sample(
    session: Db,
    conn: Any,
    principal: Principal,
    vault: Vault,
    round_id: int,
    serial: int,
    code: str,
    kind: TubeKind,
    event_id: str | None,
) -> SampleTaken:
    barcode = format_barcode(serial)
    ctx = await conn.fetchrow(queries.SCAN_CONTEXT, round_id, serial, code, event_id)
    if ctx is None:
        raise NotFound(f"no round {round_id}")
    exists = ctx["tube_exists"]
    point = ctx["tube_point"] if exists else ctx["range_point"]
    issued = point is not None and (not exists or ctx["tube_round"] == round_id)
    if not issued:
        raise BadBarcode(f"tube {barcode} was not issued for round {round_id}")
    check_scope(principal, point)
    if ctx["event_type"] is not None:
        assert event_id is not None
        return await _replayed(conn, vault, round_id, event_id)
    capacity = ctx["tube_capacity"] if exists else capacity_for(kind, ctx["district_pool"])
    resident_id = ctx["resident_id"]
    swab = Swab(
        barcode=barcode,
        kind=kind,
        issued=True,
        own_point=True,
        at=datetime.now(UTC),
        closed_at=ctx["closed_at"] if ctx["round_status"] != "open" else None,
        resident_id=resident_id,
        needs_single=bool(ctx["needs_single"]),
        earlier=(
            EarlierTube(ctx["earlier_tube"], ctx["earlier_point"], ctx["earlier_at"])
            if ctx["earlier_tube"] is not None
            else None
        ),
        alone=pool_of_one(kind, capacity),
    )
    slots = (
        TubeSlots(
            barcode,
            TubeKind(ctx["tube_kind"]),
            capacity,
            ctx["tube_count"],
            TubeState(ctx["tube_state"]),
            {resident_id} if ctx["member"] else set(),
        )
        if exists
        else None
    )
    refused = swab_refusal(swab, slots)
    if refused is not None:
        raise as_error(refused)
    args = (round_id, serial, resident_id, kind.value, event_id)
    opening = (None, None, None) if exists else (barcode, point, capacity)
    try:
        if conn.is_in_transaction():  # a savepoint: a refusal undoes only this
            async with conn.transaction():
                row = await conn.fetchrow(queries.TAKE_SLOT, *args, *opening)
        else:
            row = await conn.fetchrow(queries.TAKE_SLOT, *args, *opening)
    except asyncpg.PostgresError as exc:
        if exc.sqlstate != queries.SLOT_REFUSED:
            raise
        raise await _refusal(conn, serial, resident_id, kind) from None
    if row["outcome"] == "replay":  # the same event, sent again while this one ran
        assert event_id is not None
        return await _replayed(conn, vault, round_id, event_id)
    if kind is TubeKind.SINGLE:
        await link_singles(session, [row["taken_id"]], actor_of(principal))
    return SampleTaken(
        tube=barcode,
        kind=kind.value,
        count=row["slot_position"],
        capacity=row["slot_capacity"],
        full=row["slot_position"] >= row["slot_capacity"],
        resident=_scanned(vault, ctx["name_enc"]),
    )


async def _replayed(conn: Any, vault: Vault, round_id: int, event_id: str) -> SampleTaken:
    """The answer an event got the first time it was applied."""
    previous = await conn.fetchrow(queries.REPLAY, round_id, event_id)
    assert previous is not None
    if previous["type"] != "sample":
        raise EventReused(f"event {event_id!r} was a {previous['type']} event")
    return SampleTaken(
        tube=previous["barcode"],
        kind=previous["kind"],
        count=previous["position"],
        capacity=previous["capacity"],
        full=previous["position"] >= previous["capacity"],
        resident=_scanned(vault, previous["name_enc"]),
    )


def _scanned(vault: Vault, name_enc: bytes | None) -> ScannedResident | None:
    return ScannedResident(name_masked=mask_name(vault.decrypt(name_enc))) if name_enc else None


async def _refusal(conn: Any, serial: int, resident_id: int, kind: TubeKind) -> AppError:
    """Why the slot could not be taken after all (another scan got there first): the
    tube as it is now, read by the same rule. Nothing of the scan was written."""
    now = await conn.fetchrow(queries.TUBE_NOW, serial, resident_id)
    slots = TubeSlots(
        now["barcode"],
        TubeKind(now["kind"]),
        now["capacity"],
        now["tube_count"],
        TubeState(now["state"]),
        {resident_id} if now["member"] else set(),
    )
    refused = slots.refusal(resident_id, kind)
    if refused is None:  # the tube changed again since; the scan can simply be sent again
        return TubeSealedError(
            f"tube {now['barcode']} changed while this scan was taken; scan again"
        )
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
