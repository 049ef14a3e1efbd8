from datetime import datetime
from typing import Literal

from pydantic import Field

from screening.schemas import Schema

IdType = Literal["prc_id", "hkmo_permit", "tw_permit", "foreign_permanent", "passport", "other"]
PHONE_PATTERN = r"^\+?[0-9 -]{5,20}$"


class ResidentCreate(Schema):
    id_type: IdType
    id_number: str = Field(min_length=1, max_length=40)
    name: str = Field(min_length=1, max_length=100)
    phone: str | None = Field(default=None, pattern=PHONE_PATTERN)
    district: str | None = Field(
        default=None,
        max_length=32,
        description="district code; a sampler's own point's district when absent",
    )
    nationality: str | None = Field(
        default=None, max_length=3, description="ISO 3166-1 alpha-3; required for a passport"
    )
    community: str | None = Field(
        default=None, max_length=64, description="neighbourhood committee (社区/居委会)"
    )
    address: str | None = Field(
        default=None, max_length=200, description="home address; stored encrypted"
    )


class SelfRegistration(ResidentCreate):
    """A resident registering themselves or a family member on /me (no token)."""

    phone: str = Field(pattern=PHONE_PATTERN)
    district: str = Field(max_length=32, description="district code")


class ResidentCode(Schema):
    resident_code: str
    name_masked: str


class DistrictChoice(Schema):
    code: str
    name: str


class ResidentRead(Schema):
    resident_code: str
    id_type: str
    id_masked: str
    name_masked: str
    phone_masked: str | None
    district: str
    nationality: str | None = None
    community: str | None = None
    address_masked: str | None = None


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
    nationality: str | None = Field(
        default=None, max_length=3, description="for a passport: narrows it to one country"
    )


Status = Literal["pending", "negative", "retest", "positive", "invalid"]


class RoundStanding(Schema):
    round: str
    round_id: int
    sampled_at: datetime
    kind: Literal["pool", "single"]
    status: Status
    reported_at: datetime | None = Field(
        default=None, description="in the deployment's zone (SCREENING_TIMEZONE)"
    )
    lab: str | None = Field(default=None, description="name of the lab that reported")


class ResultAnswer(Schema):
    items: list[RoundStanding]


class UnsampledResident(Schema):
    resident_code: str
    name_masked: str
    id_masked: str
    phone_masked: str | None
    community: str | None
    district: str


class UnsampledPage(Schema):
    items: list[UnsampledResident]
    next_cursor: str | None
    total: int = Field(description="all matching residents, not only this page")


class UnsampledDistrict(Schema):
    district: str
    name: str
    registered: int
    unsampled: int
