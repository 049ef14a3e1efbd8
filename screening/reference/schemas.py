from typing import Any

from pydantic import Field, model_validator

from lab_io.kit import KitRule, UnreadableKit
from screening.schemas import CODE_PATTERN, Schema

DEFAULT_KIT: dict[str, Any] = {
    "targets": ["ORF1ab", "N"],
    "control_target": "IC",
    "positive_ct_max": 40.0,
    "grey_ct_max": None,
    "control_ct_max": 40.0,
    "dyes": {"FAM": "ORF1ab", "VIC": "N", "HEX": "N", "CY5": "IC"},
}


class DistrictCreate(Schema):
    code: str = Field(pattern=CODE_PATTERN)
    name: str = Field(min_length=1, max_length=200)
    population: int = Field(ge=0, le=100_000_000)


class DistrictRead(DistrictCreate):
    id: int


class SamplingPointCreate(Schema):
    code: str = Field(pattern=CODE_PATTERN)
    name: str = Field(min_length=1, max_length=200)
    address: str = Field(default="", max_length=400)
    district: str = Field(description="district code")
    stations: int = Field(ge=1, le=10_000)
    people_per_hour_per_station: int = Field(ge=1, le=10_000)


class SamplingPointRead(SamplingPointCreate):
    id: int


class Kit(Schema):
    targets: list[str] = Field(default=["ORF1ab", "N"], min_length=1, max_length=4)
    control_target: str | None = "IC"
    positive_ct_max: float = Field(default=40.0, gt=0, le=50)
    grey_ct_max: float | None = Field(default=None, gt=0, le=50)
    control_ct_max: float = Field(default=40.0, gt=0, le=50)
    dyes: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_KIT["dyes"]))

    @model_validator(mode="after")
    def grey_zone_above_cutoff(self) -> "Kit":
        if self.grey_ct_max is not None and self.grey_ct_max < self.positive_ct_max:
            raise ValueError("grey_ct_max must be at least positive_ct_max")
        return self

    @model_validator(mode="after")
    def readable_by_the_formats(self) -> "Kit":
        """Every target, the control and every dye must be ones the lab file formats
        read; a kit naming others would make every upload for the lab unreadable."""
        try:
            KitRule.from_kit(self.model_dump())
        except UnreadableKit as exc:
            raise ValueError(str(exc)) from None
        return self


class LabCreate(Schema):
    code: str = Field(pattern=CODE_PATTERN)
    name: str = Field(min_length=1, max_length=200)
    daily_capacity_tubes: int = Field(ge=0, le=10_000_000)
    kit: Kit = Field(default_factory=Kit)


class LabRead(LabCreate):
    id: int


class LabUpdate(Schema):
    """Fields of a lab an admin may change; absent ones stay."""

    name: str | None = Field(default=None, min_length=1, max_length=200)
    daily_capacity_tubes: int | None = Field(default=None, ge=0, le=10_000_000)
    kit: Kit | None = None
