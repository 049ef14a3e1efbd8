from datetime import datetime

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


class BoxReceive(Schema):
    tubes_scanned: list[str] | None = Field(default=None, max_length=1000)


class BoxReceipt(Schema):
    expected: int
    received: int
    missing: list[str]
    unexpected: list[str]
