from datetime import datetime
from typing import Literal

from pydantic import Field

from screening.schemas import Schema


class BoxCreate(Schema):
    barcode: str = Field(pattern=r"^[A-Za-z0-9_-]{1,40}$")
    lab: str = Field(max_length=32)
    tubes: list[str] = Field(min_length=1, max_length=500)


class BoxRead(Schema):
    barcode: str
    lab: str
    sampling_point: str
    state: str
    tubes: list[str]
    packed_at: datetime
    dispatched_at: datetime | None
    received_at: datetime | None


class TubeRejection(Schema):
    tube: str = Field(max_length=40)
    reason: Literal["leaking", "insufficient", "damaged", "unlabelled", "other"]


class BoxReceive(Schema):
    tubes_scanned: list[str] | None = Field(
        default=None,
        max_length=1000,
        description="the tubes scanned out of the box; without it, the box list is taken as"
        " scanned on the box's first receipt only",
    )
    rejected: list[TubeRejection] = Field(default_factory=list, max_length=1000)


class RecallMember(Schema):
    resident_code: str
    name_masked: str
    id_masked: str
    phone_masked: str | None
    status: Literal["to-recall", "resampled"]


class RejectedTube(Schema):
    """A tube the lab could not use: its people must be sampled again."""

    tube: str
    reason: str
    rejected_at: datetime
    lab: str
    sampling_point: str
    members: list[RecallMember]


class RejectedTubeList(Schema):
    items: list[RejectedTube]


class BoxReceipt(Schema):
    expected: int
    received: int
    missing: list[str]
    unexpected: list[str]
    taken_in: list[str] = Field(default_factory=list)
    """Unexpected tubes from another box, now in this lab's custody."""
    rejected: list[RejectedTube] = Field(default_factory=list)
    results_applied: int = 0
    """Tubes that got their result now from rows uploaded before they arrived."""
