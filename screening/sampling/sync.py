"""Offline batches (``POST /rounds/{id}/sync``): a phone that lost its network sends
everything it scanned, in order, with an ``event_id`` each.

Every event is accounted for: applied, a duplicate, or rejected alone with its reason.
The batch is applied in a constant number of statements, whatever its size:
1. read each event on its own (:mod:`screening.sampling.events`);
2. claim every new ``event_id`` (the rest are duplicates, answered as such), drawing
   each sample event's sample id in the same statement;
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

The batch statements go through asyncpg on the session's own connection, inside the
request's transaction (:func:`screening.db.raw_connection`), with their arrays bound
in binary; walk-ins and de-pool links, rare, go through the session. Issue 15 measured
where a 5,000-event batch's time goes: ``bench/sync.py`` and bench/README.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, NamedTuple

from sqlalchemy.ext.asyncio import AsyncSession

from pooling.scan_rules import EarlierTube, Swab, swab_refusal
from pooling.tubes import (
    SampleRefused,
    TubeKind,
    TubeSlots,
    TubeState,
    capacity_for,
    pool_of_one,
)
from screening.db import RetryTransaction, raw_connection, retrying
from screening.errors import NotFound
from screening.privacy import Vault
from screening.retests.service import actor_of, link_singles
from screening.sampling import queries
from screening.sampling.events import Event, Outcome, read_events
from screening.sampling.schemas import SyncAnswer, WalkInRegistered
from screening.sampling.service import may_use
from screening.sampling.walkins import walk_ins, walk_ins_sent_before
from screening.tokens.service import Principal

_ROUND = "SELECT status, closed_at FROM rounds WHERE id = $1"

_RANGES = """
    SELECT s.serial, br.sampling_point_id AS point, sp.code AS point_code,
           d.code AS district, COALESCE(rd.pool_size, r.pool_size) AS pool
    FROM unnest($2::bigint[]) AS s(serial)
    JOIN rounds r ON r.id = $1
    JOIN barcode_ranges br ON br.round_id = r.id
         AND br.first_serial <= s.serial AND br.last_serial >= s.serial
    JOIN sampling_points sp ON sp.id = br.sampling_point_id
    JOIN districts d ON d.id = sp.district_id
    LEFT JOIN round_districts rd ON rd.round_id = r.id AND rd.district_id = sp.district_id
"""

_FORGET_RESIDENTS = "DELETE FROM residents WHERE id = ANY($1::bigint[])"


class IssuedRange(NamedTuple):
    """Where a barcode of the batch was issued: its point, district and pool size."""

    point: int
    point_code: str
    district: str
    pool: int


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
    """What the replay works on and what it decided: the applied sample events, with
    their residents and positions in lists of their own (the statements' arrays)."""

    tubes: dict[int, _Tube] = field(default_factory=dict)
    samples: list[Event] = field(default_factory=list)
    residents: list[int] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)


@dataclass(slots=True)
class _People:
    """The batch's people: code -> resident id; who must be swabbed alone; the live
    pool tube each is in already (before the batch, and as the replay puts them in)."""

    ids: dict[str, int] = field(default_factory=dict)
    needs_single: set[int] = field(default_factory=set)
    earlier: dict[int, EarlierTube] = field(default_factory=dict)
    # taken by this batch: (barcode, point, at), an EarlierTube only when asked for
    pooled_here: dict[int, tuple[str, str, datetime]] = field(default_factory=dict)

    def earlier_tube(self, resident_id: int) -> EarlierTube | None:
        found = self.earlier.get(resident_id)
        if found is None and resident_id in self.pooled_here:
            found = EarlierTube(*self.pooled_here[resident_id])
        return found


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
        # only a walk-in event is changed by an attempt (it learns its code)
        lambda: _apply(
            session,
            principal,
            vault,
            round_id,
            [replace(e) if e.walk_in is not None else e for e in events],
            read.copy(),
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
    conn = await raw_connection(session)
    rnd = await conn.fetchrow(_ROUND, round_id)
    if rnd is None:
        raise NotFound(f"no round {round_id}")
    if not events:
        return SyncAnswer(applied=0, duplicates=outcome.duplicates, rejected=outcome.rejected)
    claimed_ids, sample_ids = await conn.fetchrow(
        queries.BATCH_CLAIM,
        round_id,
        [e.event_id for e in events],
        [e.type for e in events],
        [e.serial for e in events],
    )
    claimed: dict[str, int | None] = dict(zip(claimed_ids, sample_ids, strict=True))
    outcome.duplicates += len(events) - len(claimed)
    known = await walk_ins_sent_before(
        session, round_id, [e for e in events if e.walk_in and e.event_id not in claimed]
    )
    events = [e for e in events if e.event_id in claimed]
    serials = sorted({e.serial for e in events})
    ranges = {row[0]: IssuedRange(*row[1:]) for row in await conn.fetch(_RANGES, round_id, serials)}
    refused: set[str] = set()
    created = await walk_ins(session, principal, vault, events, ranges, outcome, refused)
    people = await _people(conn, round_id, events)
    batch = _Batch(tubes=await _lock_tubes(conn, serials))
    closed_at = rnd["closed_at"] if rnd["status"] != "open" else None
    for event in events:
        if event.event_id in refused:
            continue
        reason = _replay(event, batch, ranges, people, principal, round_id, closed_at)
        if reason is not None:
            outcome.refuse(event, reason)
            refused.add(event.event_id)
    batch.refused = sorted(refused)
    await _write(session, conn, principal, round_id, batch, claimed)
    used = set(batch.residents)
    forget = [people.ids[code] for code in created if people.ids[code] not in used]
    if forget:
        await conn.execute(_FORGET_RESIDENTS, forget)
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


async def _people(conn: Any, round_id: int, events: list[Event]) -> _People:
    codes = sorted({e.resident_code for e in events if e.resident_code})
    people = _People()
    if not codes:
        return people
    found, ids, needs_single = await conn.fetchrow(queries.BATCH_RESIDENTS, codes)
    people.ids = dict(zip(found, ids, strict=True))
    people.needs_single = set(needs_single)
    if ids:
        for resident_id, barcode, point, sampled_at in await conn.fetch(
            queries.BATCH_EARLIER, ids, round_id
        ):
            people.earlier[resident_id] = EarlierTube(barcode, point, sampled_at)
    return people


_LOCK_TUBES = """
    SELECT t.serial, t.barcode, t.round_id, t.sampling_point_id, sp.code AS point_code, t.kind,
           t.capacity, t.count AS tube_count, t.state
    FROM tubes t JOIN sampling_points sp ON sp.id = t.sampling_point_id
    WHERE t.serial = ANY($1::bigint[]) ORDER BY t.serial FOR UPDATE OF t
"""


async def _lock_tubes(conn: Any, serials: list[int]) -> dict[int, _Tube]:
    """The batch's existing tubes, locked in serial order, with their members."""
    rows = await conn.fetch(_LOCK_TUBES, serials)
    if not rows:
        return {}
    members: dict[int, set[int]] = {}
    for tube_serial, resident_id in await conn.fetch(
        queries.BATCH_MEMBERS, [row["serial"] for row in rows]
    ):
        members.setdefault(tube_serial, set()).add(resident_id)
    return {
        row["serial"]: _Tube(
            TubeSlots(
                row["barcode"],
                TubeKind(row["kind"]),
                row["capacity"],
                row["tube_count"],
                TubeState(row["state"]),
                members.get(row["serial"], set()),
            ),
            row["sampling_point_id"],
            row["point_code"],
            row["round_id"],
        )
        for row in rows
    }


def _replay(
    event: Event,
    batch: _Batch,
    ranges: dict[int, IssuedRange],
    people: _People,
    principal: Principal,
    round_id: int,
    closed_at: datetime | None,
) -> SampleRefused | None:
    """Apply one event to the batch's picture of its tubes, or say why not."""
    barcode = event.barcode
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
    resident_id = people.ids.get(event.resident_code or "")
    swab = Swab(
        barcode=barcode,
        kind=event.kind,
        issued=ours,
        own_point=may_use(principal, point),
        at=event.at,
        closed_at=closed_at,
        resident_id=resident_id,
        needs_single=resident_id in people.needs_single,
        earlier=people.earlier_tube(resident_id) if resident_id is not None else None,
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
    batch.positions.append(tube.slots.add(resident_id, event.kind))
    batch.samples.append(event)
    batch.residents.append(resident_id)
    _touch(tube, event.at)
    if event.kind is TubeKind.POOL and resident_id not in people.pooled_here:
        people.pooled_here[resident_id] = (barcode, point_code, event.at)
    return None


def _touch(tube: _Tube, at: datetime) -> None:
    tube.touched = True
    if tube.slots.state is TubeState.SEALED and tube.sealed_at is None:
        tube.sealed_at = at


async def _write(
    session: AsyncSession,
    conn: Any,
    principal: Principal,
    round_id: int,
    batch: _Batch,
    sample_ids: dict[str, int | None],
) -> None:
    """Write what the replay decided, set-wise, in the lock order (tubes, then people,
    then counters). ``sample_ids`` are the ids the claims drew for their samples."""
    ids = [sample_ids[e.event_id] for e in batch.samples]
    if batch.samples:
        first: dict[int, int | None] = {}
        for resident_id, sample_id in zip(batch.residents, ids, strict=True):
            first.setdefault(resident_id, sample_id)
        people = sorted(first)
        await conn.execute(queries.BATCH_PEOPLE, round_id, people, [first[r] for r in people])
    new = sorted(s for s, t in batch.tubes.items() if t.new)
    if new:
        opened = [batch.tubes[s] for s in new]
        inserted = await conn.fetch(
            queries.BATCH_CREATE_TUBES,
            round_id,
            new,
            [t.slots.barcode for t in opened],
            [t.point for t in opened],
            [t.slots.kind.value for t in opened],
            [t.slots.capacity for t in opened],
            [t.slots.count for t in opened],
            [t.slots.state.value for t in opened],
            [t.opened_at for t in opened],
            [t.sealed_at for t in opened],
        )
        if len(inserted) != len(new):
            raise RetryTransaction("a tube of the batch was opened by another request meanwhile")
    if batch.samples:
        await conn.execute(queries.PEOPLE_INSERTED, "on")
        await conn.execute(
            queries.BATCH_INSERT_SAMPLES,
            round_id,
            ids,
            [e.serial for e in batch.samples],
            batch.residents,
            [e.kind.value for e in batch.samples],
            batch.positions,
            [e.at for e in batch.samples],
        )
        await conn.execute(queries.PEOPLE_INSERTED, "off")
        singles = [
            i
            for i, e in zip(ids, batch.samples, strict=True)
            if e.kind is TubeKind.SINGLE and i is not None
        ]
        await link_singles(session, singles, actor_of(principal))
    old = sorted(s for s, t in batch.tubes.items() if t.touched and not t.new)
    if old:
        touched = [batch.tubes[s] for s in old]
        await conn.execute(
            queries.BATCH_UPDATE_TUBES,
            old,
            [t.slots.count for t in touched],
            [t.slots.state.value for t in touched],
            [t.sealed_at for t in touched],
        )
    if batch.refused:
        await conn.execute(queries.BATCH_RELEASE, round_id, batch.refused)
