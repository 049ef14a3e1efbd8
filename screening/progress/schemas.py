"""Round progress (API.md, Command center): every figure from counters."""

from __future__ import annotations

from pydantic import BaseModel


class TubeCounts(BaseModel):
    open: int = 0
    sealed: int = 0
    """Sealed, not yet in a box."""
    packed: int = 0
    """In a box that has not left."""
    in_transit: int = 0
    received: int = 0
    tested: int = 0


class ResultCounts(BaseModel):
    negative: int = 0
    positive: int = 0
    suspicious: int = 0
    invalid: int = 0


class RetestCounts(BaseModel):
    open: int = 0
    resolved: int = 0
    overdue: int = 0
    discordant: int = 0


class Turnaround(BaseModel):
    """Hours from sealing a tube to its result (5-minute resolution)."""

    p50: float | None = None
    p95: float | None = None


class Part(BaseModel):
    registered: int = 0
    tubes: TubeCounts = TubeCounts()
    results: ResultCounts = ResultCounts()
    confirmed_positive: int = 0
    boxes_late: int = 0


class DistrictProgress(Part):
    district: str
    name: str
    population: int
    coverage: float | None
    """People swabbed / population."""


class PointProgress(Part):
    sampling_point: str
    name: str
    district: str


class LabProgress(Part):
    lab: str
    name: str
    daily_capacity_tubes: int
    load: float | None
    """Tubes received this round / daily capacity."""
    turnaround_hours: Turnaround


class Progress(Part):
    round_id: int
    population: int
    retests: RetestCounts
    turnaround_hours: Turnaround
    districts: list[DistrictProgress]
    labs: list[LabProgress]
    sampling_points: list[PointProgress]
    """One page, by code (``points_limit``, default 100); the next page starts after
    ``sampling_points_next`` (pass it as ``points_after``)."""
    sampling_points_total: int = 0
    sampling_points_next: str | None = None
