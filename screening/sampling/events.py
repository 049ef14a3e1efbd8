"""Reading a sync batch's events one by one: each is checked on its own, so one
malformed event (a missing field, a 60-character code, an unknown type, a time in
year 1) is rejected alone as ``invalid-event`` with the field named, and the rest of
the batch goes on. Misread tube barcodes and resident codes are refused here too,
before any database work, as ``bad-barcode`` and ``bad-resident-code``.

:class:`~screening.sampling.schemas.SyncEvent` says what a valid event is. An event
in the shape stations send (plain ASCII text with nothing to trim, ``at`` written
``2026-11-22T09:00:00[.ffffff](Z|+08:00)``, no walk-in) is read by :func:`_plain`
without building a model: the same checks, a fifth of the time (issue 15: pydantic
was 7 µs an event, 35 ms of a 5,000-event batch). Anything else, valid or not, goes
through ``SyncEvent`` itself, which words the rejection.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError

from pooling.barcodes import BadBarcode, parse_barcode
from pooling.scan_rules import AlreadySampledRefusal, EarlierTube
from pooling.tubes import SampleRefused, TubeKind
from screening.residents.codes import normalize_resident_code, why_not_resident_code
from screening.sampling.schemas import (
    EARLIEST_EVENT_YEAR,
    LATEST_EVENT_YEAR,
    SyncEvent,
    SyncRejection,
    WalkIn,
)

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
    barcode: str = ""
    """The tube's barcode as read (trimmed; equal to ``format_barcode(serial)``)."""


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
    """The event_id of a malformed event, to echo in its rejection: the answer cannot
    carry a NUL or half a surrogate pair, so those are replaced (``index`` still says
    which event it was)."""
    value = raw.get("event_id") if isinstance(raw, dict) else None
    if not isinstance(value, str):
        return ""
    return value[:100].replace("\x00", "\ufffd").encode("utf-8", "replace").decode("utf-8")


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
    serials: dict[str, int | BadBarcode] = {}  # a tube's ten events parse it once
    for index, raw in enumerate(raw_events):
        event = _read(index, raw, now, outcome, serials)
        if event is None:
            continue
        if event.event_id in seen:
            outcome.duplicates += 1
            continue
        seen.add(event.event_id)
        events.append(event)
    return events, outcome


# what _plain reads itself; pydantic reads every other way of writing a time
_PLAIN_TIME = re.compile(
    r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,6})?(?:Z|[+-]\d\d:\d\d)", re.ASCII
)

_Fields = tuple[str, str, str, datetime | None, str | None, str | None]


def _plain_text(value: Any, max_length: int) -> bool:
    """Text ``SyncEvent`` would take as it is: ASCII (so storable once it has no NUL),
    nothing to trim (Python's ``strip`` trims a superset of what pydantic trims), of
    an allowed length."""
    return (
        type(value) is str
        and 0 < len(value) <= max_length
        and value.isascii()
        and "\x00" not in value
        and value.strip() == value
    )


def _plain(raw: Any) -> _Fields | None:
    """``(event_id, type, tube, at, resident_code, kind)`` of an event in the shape
    stations send, exactly as ``SyncEvent`` would read them; None for any other event
    (a walk-in, an odd value or an error: ``SyncEvent`` reads those)."""
    if type(raw) is not dict:
        return None
    get: Any = raw.get
    event_id, type_, tube = get("event_id"), get("type"), get("tube")
    code, kind, at = get("resident_code"), get("kind"), get("at")
    if not (_plain_text(event_id, 100) and _plain_text(tube, 40)):
        return None
    if type_ not in ("sample", "seal") or raw.get("resident") is not None:
        return None
    if code is None:
        if type_ == "sample":
            return None
    elif not _plain_text(code, 40):
        return None
    if kind is not None and kind not in ("pool", "single"):
        return None
    when: datetime | None = None
    if at is not None:
        if type(at) is not str or _PLAIN_TIME.fullmatch(at) is None:
            return None
        try:
            when = datetime.fromisoformat(at)
        except ValueError:
            return None
        if not EARLIEST_EVENT_YEAR <= when.year <= LATEST_EVENT_YEAR:
            return None
        when = when.astimezone(UTC)
    return event_id, type_, tube, when, code, kind


_KINDS = {None: TubeKind.POOL, "pool": TubeKind.POOL, "single": TubeKind.SINGLE}


def _read(
    index: int, raw: Any, now: datetime, outcome: Outcome, serials: dict[str, int | BadBarcode]
) -> Event | None:
    walk_in: WalkIn | None = None
    fields = _plain(raw)
    if fields is None:
        model = _model(index, raw, outcome)
        if model is None:
            return None
        fields = (model.event_id, model.type, model.tube, model.at, model.resident_code, model.kind)
        walk_in = model.resident
    event_id, type_, tube, at, code, kind = fields
    event = Event(index, event_id, type_, 0, now)
    if at is not None:
        if at > now + MAX_CLOCK_AHEAD:
            outcome.reject(event, "invalid-event", "at: more than a day ahead of the service")
            return None
        event.at = min(at, now)
    serial = serials.get(tube)
    if serial is None:
        try:
            serial = parse_barcode(tube)
        except BadBarcode as exc:
            serial = exc
        serials[tube] = serial
    if isinstance(serial, BadBarcode):
        outcome.reject(event, "bad-barcode", f"tube {tube!r}: {serial}")
        return None
    event.serial, event.barcode = serial, tube.strip()
    if type_ == "sample":
        event.kind = _KINDS[kind]
        if code is not None:
            code = normalize_resident_code(code)
            why = why_not_resident_code(code)
            if why is not None:
                outcome.reject(event, "bad-resident-code", f"resident code {code!r}: {why}")
                return None
            event.resident_code = code
        else:
            event.walk_in = walk_in
    return event


def _model(index: int, raw: Any, outcome: Outcome) -> SyncEvent | None:
    """``raw`` read by ``SyncEvent``, or None once it is rejected as ``invalid-event``."""
    if isinstance(raw, SyncEvent):
        return raw
    if not isinstance(raw, dict):
        detail = "an event must be a JSON object"
    else:
        try:
            return SyncEvent.model_validate(raw)
        except ValidationError as exc:
            detail = _describe(exc)
    outcome.rejected.append(
        SyncRejection(event_id=_event_id_of(raw), type="invalid-event", detail=detail, index=index)
    )
    return None
