from datetime import datetime
from typing import Literal

from pydantic import Field, model_validator

from screening.schemas import Instant, Schema

PoolSize = Literal[1, 5, 10, 20]


class RoundCreate(Schema):
    name: str = Field(min_length=1, max_length=200)
    pool_size: PoolSize
    districts: list[str] = Field(min_length=1, max_length=1000)
    starts_at: Instant
    deadline: Instant
    pool_size_by_district: dict[str, PoolSize] = Field(default_factory=dict)

    @model_validator(mode="after")
    def consistent(self) -> "RoundCreate":
        if self.deadline <= self.starts_at:
            raise ValueError("deadline must be after starts_at")
        if len(set(self.districts)) != len(self.districts):
            raise ValueError("districts must not repeat")
        strays = set(self.pool_size_by_district) - set(self.districts)
        if strays:
            raise ValueError(
                f"pool_size_by_district names districts not in the round: {sorted(strays)}"
            )
        return self


class RoundRead(Schema):
    id: int
    name: str
    pool_size: int
    status: str
    districts: list[str]
    starts_at: datetime
    deadline: datetime
    pool_size_by_district: dict[str, int]
    created_at: datetime
    closed_at: datetime | None = None


class LabShareRead(Schema):
    lab: str
    tubes: int


class DistrictPlanRead(Schema):
    district: str
    name: str
    population: int
    pool_size: int
    sampling_points: int
    stations: int
    hourly_capacity: float
    hours_needed: float | None
    tubes_needed: int
    samplers_needed: int
    lab_allocation: list[LabShareRead]
    feasible: bool
    bottleneck: str | None


class LabPlanRead(Schema):
    lab: str
    capacity: int
    allocated: int


class PlanRead(Schema):
    round_id: int
    round_hours: float
    sampling_window_hours: float
    population: int
    tubes_needed: int
    samplers_needed: int
    lab_capacity: int
    feasible: bool
    districts: list[DistrictPlanRead]
    labs: list[LabPlanRead]


class RangeCreate(Schema):
    sampling_point: str = Field(max_length=32)
    count: int = Field(ge=1, le=100_000)


class RangeIssued(Schema):
    range_id: int
    sampling_point: str
    first: str
    last: str
    count: int


class RangeRead(RangeIssued):
    barcodes: list[str]
