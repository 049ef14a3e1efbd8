"""Offline batches (``POST /rounds/{id}/sync``): a phone that lost its network sends
everything it scanned, in order, with an ``event_id`` each.

Every event is accounted for: applied, a duplicate, or rejected alone with its reason.
The batch is applied in a constant number of statements, whatever its size:
1. read each event on its own (:mod:`screening.sampling.events`);
2. claim every new ``event_id`` (the rest are duplicates, answered as such);
3. find or register the walk-ins (events carrying ``resident`` instead of a code);
4. read the people (code, open de-pool case, earlier live pool tube) and the ranges;
5. lock every existing tube of the batch ``FOR UPDATE`` in serial order (tube rows
   before counter rows: the lock order of :mod:`screening.sampling.queries`);
6. replay the events in order through :func:`pooling.scan_rules.swab_refusal` and
   :class:`pooling.tubes.TubeSlots`, the rules the online scan uses;
7. write set-wise: the tubes the batch opened (only those with an applied swab: a
   rejected event creates nothing), the samples, the tube counts and states; release
   the claims of refused events (so they can be sent again once fixed) and forget
   walk-ins registered only for refused events.
A deadlock, or a tube opened by someone else between 5 and 7, runs it all again.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY, BIGINT
from sqlalchemy.ext.asyncio import AsyncSession

from pooling.barcodes import format_barcode
from pooling.scan_rules import EarlierTube, Swab, swab_refusal
from pooling.tubes import (
    SampleRefused,
    TubeKind,
    TubeSlots,
    TubeState,
    capacity_for,
    pool_of_one,
)
from screening.db import RetryTransaction, retrying
from screening.errors import NotFound
from screening.privacy import Vault
from screening.retests.service import actor_of, link_singles
from screening.sampling import queries
from screening.sampling.events import Event, Outcome, read_events
from screening.sampling.schemas import SyncAnswer, WalkInRegistered
from screening.sampling.service import may_use
from screening.sampling.walkins import walk_ins, walk_ins_sent_before
from screening.tokens.service import Principal

_ROUND = text("SELECT status, closed_at FROM rounds WHERE id = :id")

_RANGES = text(
    """
    SELECT s.serial, br.sampling_point_id AS point, sp.code AS point_code,
           d.code AS district, COALESCE(rd.pool_size, r.pool_size) AS pool
    FROM unnest(:serials) AS s(serial)
    JOIN rounds r ON r.id = :round_id
    JOIN barcode_ranges br ON br.round_id = r.id
         AND br.first_serial <= s.serial AND br.last_serial >= s.serial
    JOIN sampling_points sp ON sp.id = br.sampling_point_id
    JOIN districts d ON d.id = sp.district_id
    LEFT JOIN round_districts rd ON rd.round_id = r.id AND rd.district_id = sp.district_id
    """
).bindparams(bindparam("serials", type_=ARRAY(BIGINT)))

_FORGET_RESIDENTS = text("DELETE FROM residents WHERE id = ANY(:ids)").bindparams(
    bindparam("ids", type_=ARRAY(BIGINT))
)


@dataclass(slots=True)
class _Tube:
    slots: TubeSlots
    point: int
    point_code: str
    round_id: int
    new: bool = False
    opened_at: datetime | None = None
    sealed_at: datetime | None = None
    touched: bool = False


@dataclass(slots=True)
class _Batch:
    """What the replay works on and what it decided."""

    tubes: dict[int, _Tube] = field(default_factory=dict)
    samples: list[tuple[Event, int, int]] = field(default_factory=list)  # resident, position
    refused: list[str] = field(default_factory=list)


async def apply_sync(
    session: AsyncSession,
    principal: Principal,
    vault: Vault,
    round_id: int,
    raw_events: list[Any],
) -> SyncAnswer:
    """Apply a batch in order; every event is applied, a duplicate, or rejected alone."""
    events, read = read_events(raw_events, datetime.now(UTC))
    return await retrying(
        session,
        lambda: _apply(
            session, principal, vault, round_id, [replace(e) for e in events], read.copy()
        ),
    )


async def _apply(
    session: AsyncSession,
    principal: Principal,
    vault: Vault,
    round_id: int,
    events: list[Event],
    outcome: Outcome,
) -> SyncAnswer:
    rnd = (await session.execute(_ROUND, {"id": round_id})).first()
    if rnd is None:
        raise NotFound(f"no round {round_id}")
    if not events:
        return SyncAnswer(applied=0, duplicates=outcome.duplicates, rejected=outcome.rejected)
    claimed = set(
        (
            await session.scalars(
                queries.BATCH_CLAIM,
                {
                    "round_id": round_id,
                    "event_ids": [e.event_id for e in events],
                    "types": [e.type for e in events],
                    "serials": [e.serial for e in events],
                },
            )
        ).all()
    )
    outcome.duplicates += len(events) - len(claimed)
    known = await walk_ins_sent_before(
        session, round_id, [e for e in events if e.walk_in and e.event_id not in claimed]
    )
    events = [e for e in events if e.event_id in claimed]
    serials = sorted({e.serial for e in events})
    ranges = {
        row.serial: row
        for row in await session.execute(_RANGES, {"round_id": round_id, "serials": serials})
    }
    refused: set[str] = set()
    created = await walk_ins(session, principal, vault, events, ranges, outcome, refused)
    people, earlier = await _people(session, round_id, events)
    batch = _Batch(tubes=await _lock_tubes(session, serials))
    closed_at = rnd.closed_at if rnd.status != "open" else None
    for event in events:
        if event.event_id in refused:
            continue
        reason = _replay(event, batch, ranges, people, earlier, principal, round_id, closed_at)
        if reason is not None:
            outcome.refuse(event, reason)
            refused.add(event.event_id)
    batch.refused = sorted(refused)
    await _write(session, principal, round_id, batch)
    used = {r for _, r, _ in batch.samples}
    forget = [people[code][0] for code in created if people[code][0] not in used]
    if forget:
        await session.execute(_FORGET_RESIDENTS, {"ids": forget})
    outcome.rejected.sort(key=lambda r: r.index)
    return SyncAnswer(
        applied=len(events) - len(refused),
        duplicates=outcome.duplicates,
        rejected=outcome.rejected,
        registered=known
        + [
            WalkInRegistered(event_id=e.event_id, resident_code=e.resident_code or "")
            for e in events
            if e.walk_in is not None and e.event_id not in refused
        ],
    )


async def _people(
    session: AsyncSession, round_id: int, events: list[Event]
) -> tuple[dict[str, tuple[int, bool]], dict[int, EarlierTube]]:
    """code -> (resident id, needs single); resident id -> their live pool tube."""
    codes = sorted({e.resident_code for e in events if e.resident_code})
    if not codes:
        return {}, {}
    people = {
        row.code: (row.id, bool(row.needs_single))
        for row in await session.execute(queries.BATCH_RESIDENTS, {"codes": codes})
    }
    earlier = {
        row.resident_id: EarlierTube(row.barcode, row.point, row.sampled_at)
        for row in await session.execute(
            queries.BATCH_EARLIER,
            {"round_id": round_id, "residents": [i for i, _ in people.values()]},
        )
    }
    return people, earlier


_LOCK_TUBES = text(
    """
    SELECT t.serial, t.barcode, t.round_id, t.sampling_point_id, sp.code AS point_code, t.kind,
           t.capacity, t.count AS tube_count, t.state
    FROM tubes t JOIN sampling_points sp ON sp.id = t.sampling_point_id
    WHERE t.serial = ANY(:serials) ORDER BY t.serial FOR UPDATE OF t
    """
).bindparams(bindparam("serials", type_=ARRAY(BIGINT)))


async def _lock_tubes(session: AsyncSession, serials: list[int]) -> dict[int, _Tube]:
    """The batch's existing tubes, locked in serial order, with their members."""
    rows = (await session.execute(_LOCK_TUBES, {"serials": serials})).all()
    if not rows:
        return {}
    members: dict[int, set[int]] = {}
    for tube_serial, resident_id in await session.execute(
        queries.BATCH_MEMBERS, {"serials": [row.serial for row in rows]}
    ):
        members.setdefault(tube_serial, set()).add(resident_id)
    return {
        row.serial: _Tube(
            TubeSlots(
                row.barcode,
                TubeKind(row.kind),
                row.capacity,
                row.tube_count,
                TubeState(row.state),
                members.get(row.serial, set()),
            ),
            row.sampling_point_id,
            row.point_code,
            row.round_id,
        )
        for row in rows
    }


def _replay(
    event: Event,
    batch: _Batch,
    ranges: dict[int, Any],
    people: dict[str, tuple[int, bool]],
    earlier: dict[int, EarlierTube],
    principal: Principal,
    round_id: int,
    closed_at: datetime | None,
) -> SampleRefused | None:
    """Apply one event to the batch's picture of its tubes, or say why not."""
    barcode = format_barcode(event.serial)
    tube = batch.tubes.get(event.serial)
    issued = ranges.get(event.serial)
    point: int | None
    if tube is not None:
        ours, point, point_code = tube.round_id == round_id, tube.point, tube.point_code
    else:
        ours = issued is not None
        point, point_code = (issued.point, issued.point_code) if issued else (None, "")
    if event.type == "seal":
        if not ours:
            return SampleRefused("bad-barcode", f"tube {barcode} was not issued for this round")
        if not may_use(principal, point):
            return SampleRefused("forbidden", f"tube {barcode} belongs to another sampling point")
        if tube is None:
            return SampleRefused("tube-empty", f"tube {barcode} holds no sample in this round")
        try:
            tube.slots.seal()
        except SampleRefused as exc:
            return exc
        _touch(tube, event.at)
        return None
    person = people.get(event.resident_code or "")
    resident_id = person[0] if person else None
    swab = Swab(
        barcode=barcode,
        kind=event.kind,
        issued=ours,
        own_point=may_use(principal, point),
        at=event.at,
        closed_at=closed_at,
        resident_id=resident_id,
        needs_single=bool(person and person[1]),
        earlier=earlier.get(resident_id) if resident_id is not None else None,
        alone=pool_of_one(
            event.kind, tube.slots.capacity if tube is not None else issued.pool if issued else 0
        ),
    )
    refused = swab_refusal(swab, tube.slots if tube is not None else None)
    if refused is not None:
        return refused
    assert resident_id is not None and point is not None
    if tube is None:
        assert issued is not None
        capacity = capacity_for(event.kind, issued.pool)
        slots = TubeSlots(barcode, event.kind, capacity, 0, TubeState.OPEN, set())
        tube = _Tube(slots, point, point_code, round_id, new=True, opened_at=event.at)
        batch.tubes[event.serial] = tube
    position = tube.slots.add(resident_id, event.kind)
    batch.samples.append((event, resident_id, position))
    _touch(tube, event.at)
    if event.kind is TubeKind.POOL:
        earlier.setdefault(resident_id, EarlierTube(barcode, point_code, event.at))
    return None


def _touch(tube: _Tube, at: datetime) -> None:
    tube.touched = True
    if tube.slots.state is TubeState.SEALED and tube.sealed_at is None:
        tube.sealed_at = at


async def _write(session: AsyncSession, principal: Principal, round_id: int, batch: _Batch) -> None:
    """Write what the replay decided, set-wise, in the lock order (tubes, then counters)."""
    new = sorted(s for s, t in batch.tubes.items() if t.new)
    if new:
        inserted = await session.scalars(
            queries.BATCH_CREATE_TUBES,
            {
                "round_id": round_id,
                "serials": new,
                "barcodes": [batch.tubes[s].slots.barcode for s in new],
                "points": [batch.tubes[s].point for s in new],
                "kinds": [batch.tubes[s].slots.kind.value for s in new],
                "capacities": [batch.tubes[s].slots.capacity for s in new],
                "counts": [batch.tubes[s].slots.count for s in new],
                "states": [batch.tubes[s].slots.state.value for s in new],
                "opened_ats": [batch.tubes[s].opened_at for s in new],
                "sealed_ats": [batch.tubes[s].sealed_at for s in new],
            },
        )
        if len(inserted.all()) != len(new):
            raise RetryTransaction("a tube of the batch was opened by another request meanwhile")
    if batch.samples:
        rows = (
            await session.execute(
                queries.BATCH_INSERT_SAMPLES,
                {
                    "round_id": round_id,
                    "serials": [e.serial for e, _, _ in batch.samples],
                    "residents": [r for _, r, _ in batch.samples],
                    "kinds": [e.kind.value for e, _, _ in batch.samples],
                    "positions": [p for _, _, p in batch.samples],
                    "ats": [e.at for e, _, _ in batch.samples],
                },
            )
        ).all()
        ids = {(row.tube_serial, row.resident_id): row.id for row in rows}
        await session.execute(
            queries.BATCH_LINK_EVENTS,
            {
                "round_id": round_id,
                "event_ids": [e.event_id for e, _, _ in batch.samples],
                "sample_ids": [ids[(e.serial, r)] for e, r, _ in batch.samples],
            },
        )
        singles = [ids[(e.serial, r)] for e, r, _ in batch.samples if e.kind is TubeKind.SINGLE]
        await link_singles(session, singles, actor_of(principal))
    old = sorted(s for s, t in batch.tubes.items() if t.touched and not t.new)
    if old:
        await session.execute(
            queries.BATCH_UPDATE_TUBES,
            {
                "serials": old,
                "counts": [batch.tubes[s].slots.count for s in old],
                "states": [batch.tubes[s].slots.state.value for s in old],
                "sealed_ats": [batch.tubes[s].sealed_at for s in old],
            },
        )
    if batch.refused:
        await session.execute(
            queries.BATCH_RELEASE, {"round_id": round_id, "event_ids": batch.refused}
        )
