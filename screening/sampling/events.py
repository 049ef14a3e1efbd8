"""Reading a sync batch's events one by one: each is checked on its own, so one
malformed event (a missing field, a 60-character code, an unknown type, a time in
year 1) is rejected alone as ``invalid-event`` with the field named, and the rest of
the batch goes on. Misread tube barcodes and resident codes are refused here too,
before any database work, as ``bad-barcode`` and ``bad-resident-code``."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError

from pooling.barcodes import BadBarcode, parse_barcode
from pooling.scan_rules import AlreadySampledRefusal, EarlierTube
from pooling.tubes import SampleRefused, TubeKind
from screening.residents.codes import normalize_resident_code, why_not_resident_code
from screening.sampling.schemas import SyncEvent, SyncRejection, WalkIn

# a phone whose clock runs ahead: its times read as now; further ahead is an error
MAX_CLOCK_AHEAD = timedelta(days=1)


@dataclass(slots=True)
class Event:
    index: int
    event_id: str
    type: str
    serial: int
    at: datetime
    resident_code: str | None = None
    walk_in: WalkIn | None = None
    kind: TubeKind = TubeKind.POOL


@dataclass(slots=True)
class Outcome:
    rejected: list[SyncRejection] = field(default_factory=list)
    duplicates: int = 0

    def reject(self, event: Event | int, type_: str, detail: str) -> None:
        index, event_id = (event, "") if isinstance(event, int) else (event.index, event.event_id)
        self.rejected.append(
            SyncRejection(event_id=event_id, type=type_, detail=detail, index=index)
        )

    def refuse(self, event: Event, refused: SampleRefused) -> None:
        self.reject(event, refused.type, refused.detail)
        if isinstance(refused, AlreadySampledRefusal):
            self.rejected[-1].earlier = earlier_json(refused.earlier)

    def copy(self) -> Outcome:
        return Outcome([r.model_copy() for r in self.rejected], self.duplicates)


def earlier_json(earlier: EarlierTube) -> dict[str, str]:
    return {
        "tube": earlier.barcode,
        "sampling_point": earlier.sampling_point,
        "sampled_at": earlier.sampled_at.isoformat(),
    }


def _event_id_of(raw: Any) -> str:
    value = raw.get("event_id") if isinstance(raw, dict) else None
    return value[:100] if isinstance(value, str) else ""


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False):
        where = ".".join(str(p) for p in err["loc"]) or "event"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


def read_events(raw_events: list[Any], now: datetime) -> tuple[list[Event], Outcome]:
    """The well-formed events, in order, first of each ``event_id``; and the outcome
    so far (rejections of malformed events, duplicates inside the batch)."""
    outcome = Outcome()
    events: list[Event] = []
    seen: set[str] = set()
    for index, raw in enumerate(raw_events):
        event = _read(index, raw, now, outcome)
        if event is None:
            continue
        if event.event_id in seen:
            outcome.duplicates += 1
            continue
        seen.add(event.event_id)
        events.append(event)
    return events, outcome


def _read(index: int, raw: Any, now: datetime, outcome: Outcome) -> Event | None:
    if not isinstance(raw, SyncEvent):
        if not isinstance(raw, dict):
            detail = "an event must be a JSON object"
        else:
            try:
                raw = SyncEvent.model_validate(raw)
            except ValidationError as exc:
                detail = _describe(exc)
            else:
                detail = ""
        if not isinstance(raw, SyncEvent):
            outcome.rejected.append(
                SyncRejection(
                    event_id=_event_id_of(raw), type="invalid-event", detail=detail, index=index
                )
            )
            return None
    event = Event(index, raw.event_id, raw.type, 0, now)
    if raw.at is not None:
        if raw.at > now + MAX_CLOCK_AHEAD:
            outcome.reject(event, "invalid-event", "at: more than a day ahead of the service")
            return None
        event.at = min(raw.at, now)
    try:
        event.serial = parse_barcode(raw.tube)
    except BadBarcode as exc:
        outcome.reject(event, "bad-barcode", f"tube {raw.tube!r}: {exc}")
        return None
    if raw.type == "sample":
        event.kind = TubeKind(raw.kind or "pool")
        if raw.resident_code is not None:
            code = normalize_resident_code(raw.resident_code)
            why = why_not_resident_code(code)
            if why is not None:
                outcome.reject(event, "bad-resident-code", f"resident code {code!r}: {why}")
                return None
            event.resident_code = code
        else:
            event.walk_in = raw.resident
    return event
