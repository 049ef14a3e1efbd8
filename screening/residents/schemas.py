from datetime import datetime
from typing import Literal

from pydantic import Field

from screening.schemas import Schema

IdType = Literal["prc_id", "passport", "other"]


class ResidentCreate(Schema):
    id_type: IdType
    id_number: str = Field(min_length=1, max_length=40)
    name: str = Field(min_length=1, max_length=100)
    phone: str | None = Field(default=None, pattern=r"^\+?[0-9 -]{5,20}$")
    district: str = Field(max_length=32, description="district code")


class ResidentCode(Schema):
    resident_code: str


class ResidentRead(Schema):
    resident_code: str
    id_type: str
    id_masked: str
    name_masked: str
    phone_masked: str | None
    district: str


class ImportRejection(Schema):
    line: int
    type: str
    detail: str


class ImportCode(Schema):
    line: int
    resident_code: str


class ImportSummary(Schema):
    created: int
    existing: int
    rejected: list[ImportRejection]
    codes: list[ImportCode]


class ResultQuery(Schema):
    id_number: str = Field(min_length=1, max_length=40)
    name: str = Field(min_length=1, max_length=100)


Status = Literal["pending", "negative", "retest", "positive", "invalid"]


class RoundStanding(Schema):
    round: str
    round_id: int
    sampled_at: datetime
    kind: Literal["pool", "single"]
    status: Status
    reported_at: datetime | None = None


class ResultAnswer(Schema):
    items: list[RoundStanding]
