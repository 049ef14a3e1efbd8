from datetime import datetime
from typing import Literal

from pydantic import Field

from screening.schemas import Schema

Kind = Literal["pool", "single"]


class SampleCreate(Schema):
    tube: str = Field(max_length=40, description="tube barcode as scanned")
    resident_code: str = Field(max_length=40)
    kind: Kind = "pool"
    event_id: str | None = Field(default=None, min_length=1, max_length=100)


class SampleTaken(Schema):
    tube: str
    kind: Kind
    count: int
    capacity: int
    full: bool


class TubeSealed(Schema):
    tube: str
    count: int


class SyncEvent(Schema):
    """One offline scan. Fields are loose on purpose: a bad event is rejected alone."""

    event_id: str = Field(default="", max_length=100)
    at: str | None = Field(default=None, max_length=40, description="ISO 8601 with offset")
    type: str = Field(default="", max_length=20)
    tube: str = Field(default="", max_length=40)
    resident_code: str | None = Field(default=None, max_length=40)
    kind: str | None = Field(default=None, max_length=20)


class SyncBatch(Schema):
    events: list[SyncEvent] = Field(max_length=20_000)


class SyncRejection(Schema):
    event_id: str
    type: str
    detail: str


class SyncAnswer(Schema):
    applied: int
    duplicates: int
    rejected: list[SyncRejection]


class MemberRead(Schema):
    position: int
    resident_code: str
    name_masked: str
    id_masked: str
    sampled_at: datetime


class TubeRead(Schema):
    tube: str
    round_id: int
    kind: Kind
    state: str
    count: int
    capacity: int
    sampling_point: str
    sampling_point_address: str
    opened_at: datetime
    sealed_at: datetime | None
    box: str | None
    lab: str | None
    received_at: datetime | None
    members: list[MemberRead]
    result: dict[str, object] | None = None
