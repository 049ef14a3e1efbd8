from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    field_validator,
    model_validator,
)

from screening.schemas import Schema

Kind = Literal["pool", "single"]


class SampleCreate(Schema):
    tube: str = Field(max_length=40, description="tube barcode as scanned")
    resident_code: str = Field(max_length=40)
    kind: Kind = "pool"
    event_id: str | None = Field(default=None, min_length=1, max_length=100)


class ScannedResident(Schema):
    name_masked: str = Field(description="the person just scanned, masked, for the clerk to check")


class SampleTaken(Schema):
    tube: str
    kind: Kind
    count: int
    capacity: int
    full: bool
    resident: ScannedResident | None = None


class TubeSealed(Schema):
    tube: str
    count: int


MAX_SYNC_EVENTS = 5_000


class WalkIn(Schema):
    """A person with no code, typed or read from an ID card at the station."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    id_type: str = Field(max_length=32)
    id_number: str = Field(min_length=1, max_length=40)
    name: str = Field(min_length=1, max_length=100)
    phone: str | None = Field(default=None, max_length=40)
    nationality: str | None = Field(default=None, max_length=3)


class SyncEvent(Schema):
    """One offline scan. ``sample`` events carry ``resident_code`` or, for a walk-in,
    ``resident`` (found or registered, then sampled). ``at`` is when it was taken (ISO
    8601 with offset; absent means now; between 2000 and one day ahead, later than now
    reads as now). Unknown keys are ignored."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    event_id: str = Field(min_length=1, max_length=100)
    type: Literal["sample", "seal"]
    tube: str = Field(min_length=1, max_length=40)
    at: AwareDatetime | None = None
    resident_code: str | None = Field(default=None, min_length=1, max_length=40)
    resident: WalkIn | None = None
    kind: Kind | None = None

    @field_validator("at")
    @classmethod
    def _sane_time(cls, value: datetime | None) -> datetime | None:
        # compared field by field first: year 1 or 9999 with an offset overflows any
        # arithmetic (issue 16)
        if value is None:
            return None
        if not EARLIEST_EVENT_YEAR <= value.year <= LATEST_EVENT_YEAR:
            raise ValueError(
                f"must be a time between {EARLIEST_EVENT_YEAR} and {LATEST_EVENT_YEAR}"
            )
        return value.astimezone(UTC)

    @model_validator(mode="after")
    def _sample_names_one_person(self) -> SyncEvent:
        if self.type == "sample" and (self.resident_code is None) == (self.resident is None):
            raise ValueError("a sample event needs resident_code or resident (one of them)")
        return self


def _as_sent(value: Any) -> Any:
    return value


# An event as sent, read later on its own (screening.sampling.events: valid or not, it
# never fails the envelope); documented as a SyncEvent, or anything else.
RawSyncEvent = Annotated[Any, PlainValidator(_as_sent, json_schema_input_type=SyncEvent | Any)]


class SyncBatch(BaseModel):
    """The envelope: a JSON object with an ``events`` list of at most 5,000. Each event
    is checked on its own (:class:`SyncEvent`): a malformed one is rejected alone as
    ``invalid-event`` and never fails the batch. Other keys of the envelope are ignored."""

    model_config = ConfigDict(extra="ignore")

    events: list[RawSyncEvent] = Field(
        max_length=MAX_SYNC_EVENTS, description="events in the order they were taken"
    )


EARLIEST_EVENT_YEAR = 2000
LATEST_EVENT_YEAR = 2100


class SyncRejection(Schema):
    event_id: str
    type: str
    detail: str
    index: int = Field(description="the event's position in the batch, from 0")
    earlier: dict[str, str] | None = Field(
        default=None, description="already-sampled: the earlier tube, its point and time"
    )


class WalkInRegistered(Schema):
    event_id: str
    resident_code: str


class SyncAnswer(Schema):
    applied: int
    duplicates: int
    rejected: list[SyncRejection]
    registered: list[WalkInRegistered] = Field(
        default_factory=list, description="walk-ins of applied events, with their codes"
    )


class MemberRead(Schema):
    position: int
    resident_code: str
    name_masked: str
    id_masked: str
    sampled_at: datetime


class TubeRead(Schema):
    """A tube. A barcode issued to this point for this round and not scanned yet is
    ``state: "unused"`` with ``kind: null``, ``count: 0`` and the capacity a pool tube
    of it would have (a single tube holds 1)."""

    tube: str
    round_id: int
    kind: Kind | None
    state: str = Field(description="unused, open, sealed, packed, in_transit, received or resulted")
    count: int
    capacity: int
    sampling_point: str
    sampling_point_address: str
    opened_at: datetime | None
    sealed_at: datetime | None
    box: str | None
    lab: str | None
    received_at: datetime | None
    members: list[MemberRead]
    result: dict[str, object] | None = None
