"""Offline batches (``POST /rounds/{id}/sync``): a phone that lost its network sends
everything it scanned, in order, with an ``event_id`` each.

The batch is applied in a constant number of statements, whatever its size:
1. claim every new ``event_id`` (the rest are duplicates, answered as such);
2. create the tubes seen for the first time, then lock every tube of the batch
   (``FOR UPDATE``, in serial order, so two batches never deadlock);
3. replay the events in order through :class:`pooling.tubes.TubeSlots`;
4. write samples, tube counts and states set-wise, and release the claims of the
   events that were refused, so they can be sent again once fixed.
One bad event is rejected alone, with its reason; it never blocks the rest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY, BIGINT, INTEGER, TEXT, TIMESTAMP
from sqlalchemy.ext.asyncio import AsyncSession

from pooling.barcodes import BadBarcode, format_barcode, parse_barcode
from pooling.tubes import SampleRefused, TubeKind, TubeSlots, TubeState, capacity_for
from screening.errors import NotFound
from screening.retests.service import actor_of, link_singles
from screening.sampling.schemas import SyncAnswer, SyncEvent, SyncRejection
from screening.tokens.service import Principal


@dataclass(slots=True)
class _Event:
    event_id: str
    type: str
    serial: int
    at: datetime
    resident_code: str | None = None
    kind: TubeKind = TubeKind.POOL


@dataclass(slots=True)
class _Outcome:
    rejected: list[SyncRejection] = field(default_factory=list)
    duplicates: int = 0

    def reject(self, event_id: str, type_: str, detail: str) -> None:
        self.rejected.append(SyncRejection(event_id=event_id, type=type_, detail=detail))


def _parse(raw: SyncEvent, now: datetime, outcome: _Outcome) -> _Event | None:
    if not raw.event_id:
        outcome.reject("", "invalid-request", "event_id is required")
        return None
    if raw.type not in ("sample", "seal"):
        outcome.reject(raw.event_id, "invalid-request", "type must be 'sample' or 'seal'")
        return None
    try:
        serial = parse_barcode(raw.tube)
    except BadBarcode as exc:
        outcome.reject(raw.event_id, "bad-barcode", f"tube {raw.tube!r}: {exc}")
        return None
    at = now
    if raw.at:
        try:
            at = datetime.fromisoformat(raw.at)
        except ValueError:
            outcome.reject(raw.event_id, "invalid-request", "at must be ISO 8601 with an offset")
            return None
        if at.tzinfo is None:
            outcome.reject(raw.event_id, "invalid-request", "at must carry a UTC offset")
            return None
        at = min(at, now)
    event = _Event(raw.event_id, raw.type, serial, at)
    if raw.type == "sample":
        if not raw.resident_code:
            outcome.reject(raw.event_id, "invalid-request", "a sample event needs resident_code")
            return None
        if raw.kind not in (None, "pool", "single"):
            outcome.reject(raw.event_id, "invalid-request", "kind must be 'pool' or 'single'")
            return None
        event.resident_code = raw.resident_code
        event.kind = TubeKind(raw.kind or "pool")
    return event


_CLAIM = text(
    """
    INSERT INTO applied_events (round_id, event_id, type, tube_serial)
    SELECT :round_id, e.event_id, e.type, e.serial
    FROM unnest(:event_ids, :types, :serials) AS e(event_id, type, serial)
    ORDER BY e.event_id
    ON CONFLICT DO NOTHING
    RETURNING event_id
    """
).bindparams(
    bindparam("event_ids", type_=ARRAY(TEXT)),
    bindparam("types", type_=ARRAY(TEXT)),
    bindparam("serials", type_=ARRAY(BIGINT)),
)

_RANGES = text(
    """
    SELECT s.serial, br.sampling_point_id AS point, COALESCE(rd.pool_size, r.pool_size) AS pool
    FROM unnest(:serials) AS s(serial)
    JOIN rounds r ON r.id = :round_id
    JOIN barcode_ranges br ON br.round_id = r.id
         AND br.first_serial <= s.serial AND br.last_serial >= s.serial
    JOIN sampling_points sp ON sp.id = br.sampling_point_id
    LEFT JOIN round_districts rd ON rd.round_id = r.id AND rd.district_id = sp.district_id
    """
).bindparams(bindparam("serials", type_=ARRAY(BIGINT)))

_CREATE_TUBES = text(
    """
    INSERT INTO tubes (serial, barcode, round_id, sampling_point_id, kind, capacity, count, state)
    SELECT t.serial, lpad(t.serial::text, 13, '0') || t.check_digit, :round_id, t.point,
           t.kind, t.capacity, 0, 'open'
    FROM unnest(:serials, :check_digits, :points, :kinds, :capacities)
         AS t(serial, check_digit, point, kind, capacity)
    ORDER BY t.serial
    ON CONFLICT DO NOTHING
    """
).bindparams(
    bindparam("serials", type_=ARRAY(BIGINT)),
    bindparam("check_digits", type_=ARRAY(TEXT)),
    bindparam("points", type_=ARRAY(INTEGER)),
    bindparam("kinds", type_=ARRAY(TEXT)),
    bindparam("capacities", type_=ARRAY(INTEGER)),
)

_LOCK_TUBES = text(
    """
    SELECT serial, barcode, round_id, sampling_point_id, kind, capacity, count AS tube_count,
           state
    FROM tubes WHERE serial = ANY(:serials) ORDER BY serial FOR UPDATE
    """
).bindparams(bindparam("serials", type_=ARRAY(BIGINT)))

_MEMBERS = text(
    "SELECT tube_serial, resident_id FROM samples WHERE tube_serial = ANY(:serials)"
).bindparams(bindparam("serials", type_=ARRAY(BIGINT)))

_RESIDENTS = text("SELECT code, id FROM residents WHERE code = ANY(:codes)").bindparams(
    bindparam("codes", type_=ARRAY(TEXT))
)

_INSERT_SAMPLES = text(
    """
    INSERT INTO samples (round_id, tube_serial, resident_id, kind, position, sampled_at)
    SELECT :round_id, s.serial, s.resident_id, s.kind, s.position, s.at
    FROM unnest(:serials, :residents, :kinds, :positions, :ats)
         AS s(serial, resident_id, kind, position, at)
    RETURNING id, tube_serial, resident_id
    """
).bindparams(
    bindparam("serials", type_=ARRAY(BIGINT)),
    bindparam("residents", type_=ARRAY(BIGINT)),
    bindparam("kinds", type_=ARRAY(TEXT)),
    bindparam("positions", type_=ARRAY(INTEGER)),
    bindparam("ats", type_=ARRAY(TIMESTAMP(timezone=True))),
)

_UPDATE_TUBES = text(
    """
    UPDATE tubes t SET count = u.count, state = u.state,
           sealed_at = CASE WHEN u.state = 'sealed' THEN COALESCE(t.sealed_at, u.sealed_at)
                            ELSE t.sealed_at END
    FROM unnest(:serials, :counts, :states, :sealed_ats) AS u(serial, count, state, sealed_at)
    WHERE t.serial = u.serial
    """
).bindparams(
    bindparam("serials", type_=ARRAY(BIGINT)),
    bindparam("counts", type_=ARRAY(INTEGER)),
    bindparam("states", type_=ARRAY(TEXT)),
    bindparam("sealed_ats", type_=ARRAY(TIMESTAMP(timezone=True))),
)

_LINK_EVENTS = text(
    """
    UPDATE applied_events e SET sample_id = u.sample_id
    FROM unnest(:event_ids, :sample_ids) AS u(event_id, sample_id)
    WHERE e.round_id = :round_id AND e.event_id = u.event_id
    """
).bindparams(
    bindparam("event_ids", type_=ARRAY(TEXT)), bindparam("sample_ids", type_=ARRAY(BIGINT))
)

_RELEASE = text(
    "DELETE FROM applied_events WHERE round_id = :round_id AND event_id = ANY(:event_ids)"
).bindparams(bindparam("event_ids", type_=ARRAY(TEXT)))


async def apply_sync(
    session: AsyncSession, principal: Principal, round_id: int, raw_events: list[SyncEvent]
) -> SyncAnswer:
    status = await session.scalar(
        text("SELECT status FROM rounds WHERE id = :id"), {"id": round_id}
    )
    if status is None:
        raise NotFound(f"no round {round_id}")
    now = datetime.now(UTC)
    outcome = _Outcome()
    events: list[_Event] = []
    seen: set[str] = set()
    for raw in raw_events:
        event = _parse(raw, now, outcome)
        if event is None:
            continue
        if event.event_id in seen:
            outcome.duplicates += 1
            continue
        seen.add(event.event_id)
        events.append(event)
    if not events:
        return SyncAnswer(applied=0, duplicates=outcome.duplicates, rejected=outcome.rejected)

    claimed = set(
        (
            await session.scalars(
                _CLAIM,
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
    events = [e for e in events if e.event_id in claimed]
    if status != "open":
        for event in events:
            outcome.reject(event.event_id, "round-closed", f"round {round_id} is closed")
        await _release(session, round_id, [e.event_id for e in events])
        return SyncAnswer(applied=0, duplicates=outcome.duplicates, rejected=outcome.rejected)

    tubes = await _lock_tubes(session, round_id, events)
    residents: dict[str, int] = dict(
        (
            await session.execute(
                _RESIDENTS, {"codes": sorted({e.resident_code for e in events if e.resident_code})}
            )
        ).all()
    )

    new_samples: list[tuple[_Event, int, int]] = []  # event, resident id, position
    touched: dict[int, datetime | None] = {}
    refused: list[str] = []
    for event in events:
        slots, point = tubes.get(event.serial, (None, None))
        reason = _check(event, slots, point, principal, residents, round_id)
        if reason is None:
            assert slots is not None
            try:
                if event.type == "seal":
                    slots.seal()
                else:
                    resident_id = residents[event.resident_code or ""]
                    new_samples.append((event, resident_id, slots.add(resident_id, event.kind)))
                if slots.state is TubeState.SEALED:
                    touched[event.serial] = touched.get(event.serial) or event.at
                else:
                    touched.setdefault(event.serial, None)
                continue
            except SampleRefused as exc:
                reason = (exc.type, exc.detail)
        outcome.reject(event.event_id, *reason)
        refused.append(event.event_id)

    singles = await _write(session, round_id, tubes, new_samples, touched)
    await link_singles(session, singles, actor_of(principal))
    await _release(session, round_id, refused)
    applied = len(events) - len(refused)
    return SyncAnswer(applied=applied, duplicates=outcome.duplicates, rejected=outcome.rejected)


def _check(
    event: _Event,
    slots: TubeSlots | None,
    point: int | None,
    principal: Principal,
    residents: dict[str, int],
    round_id: int,
) -> tuple[str, str] | None:
    if slots is None:
        if event.type == "seal":
            return (
                "tube-empty",
                f"tube {format_barcode(event.serial)} holds no sample in round {round_id}",
            )
        return (
            "bad-barcode",
            f"tube {format_barcode(event.serial)} was not issued for round {round_id}",
        )
    if principal.role == "sampler" and principal.sampling_point_id != point:
        return "forbidden", f"tube {slots.barcode} belongs to another sampling point"
    if event.type == "sample" and (event.resident_code or "") not in residents:
        return "unknown-resident", "no resident with this code; register them first"
    return None


async def _lock_tubes(
    session: AsyncSession, round_id: int, events: list[_Event]
) -> dict[int, tuple[TubeSlots, int]]:
    """Every tube of the batch, created if new, locked, with its members."""
    serials = sorted({e.serial for e in events})
    ranges = {
        row.serial: row
        for row in (
            await session.execute(_RANGES, {"round_id": round_id, "serials": serials})
        ).all()
    }
    first_kind: dict[int, TubeKind] = {}
    for event in events:
        if event.type == "sample":
            first_kind.setdefault(event.serial, event.kind)
    fresh = [s for s in serials if s in ranges and s in first_kind]
    if fresh:
        await session.execute(
            _CREATE_TUBES,
            {
                "round_id": round_id,
                "serials": fresh,
                "check_digits": [format_barcode(s)[-1] for s in fresh],
                "points": [ranges[s].point for s in fresh],
                "kinds": [first_kind[s].value for s in fresh],
                "capacities": [capacity_for(first_kind[s], ranges[s].pool) for s in fresh],
            },
        )
    rows = (await session.execute(_LOCK_TUBES, {"serials": serials})).all()
    members: dict[int, set[int]] = {}
    for tube_serial, resident_id in await session.execute(_MEMBERS, {"serials": serials}):
        members.setdefault(tube_serial, set()).add(resident_id)
    return {
        row.serial: (
            TubeSlots(
                row.barcode,
                TubeKind(row.kind),
                row.capacity,
                row.tube_count,
                TubeState(row.state),
                members.get(row.serial, set()),
            ),
            row.sampling_point_id,
        )
        for row in rows
        if row.round_id == round_id
    }


async def _write(
    session: AsyncSession,
    round_id: int,
    tubes: dict[int, tuple[TubeSlots, int]],
    new_samples: list[tuple[_Event, int, int]],
    touched: dict[int, datetime | None],
) -> list[int]:
    """Write the new samples and tube states; answer the ids of new single samples."""
    singles: list[int] = []
    if new_samples:
        rows = (
            await session.execute(
                _INSERT_SAMPLES,
                {
                    "round_id": round_id,
                    "serials": [e.serial for e, _, _ in new_samples],
                    "residents": [r for _, r, _ in new_samples],
                    "kinds": [e.kind.value for e, _, _ in new_samples],
                    "positions": [p for _, _, p in new_samples],
                    "ats": [e.at for e, _, _ in new_samples],
                },
            )
        ).all()
        ids = {(row.tube_serial, row.resident_id): row.id for row in rows}
        singles = [ids[(e.serial, r)] for e, r, _ in new_samples if e.kind is TubeKind.SINGLE]
        await session.execute(
            _LINK_EVENTS,
            {
                "round_id": round_id,
                "event_ids": [e.event_id for e, _, _ in new_samples],
                "sample_ids": [ids[(e.serial, r)] for e, r, _ in new_samples],
            },
        )
    if touched:
        serials = sorted(touched)
        await session.execute(
            _UPDATE_TUBES,
            {
                "serials": serials,
                "counts": [tubes[s][0].count for s in serials],
                "states": [tubes[s][0].state.value for s in serials],
                "sealed_ats": [touched[s] for s in serials],
            },
        )
    return singles


async def _release(session: AsyncSession, round_id: int, event_ids: list[str]) -> None:
    if event_ids:
        await session.execute(_RELEASE, {"round_id": round_id, "event_ids": event_ids})
