"""Round progress (API.md, Command center): every figure from counters."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


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


class PositiveCounts(BaseModel):
    positive: int = 0
    suspicious: int = 0


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
    """People sampled in this round (each person once, at the point of their first
    sample), the figure to hold against the population."""
    samples: int = 0
    """Swabs taken, single re-tests and re-swabs included."""
    pools: PositiveCounts = PositiveCounts()
    """Pooled tubes (more than one person) whose latest call is positive / suspicious."""
    singles: PositiveCounts = PositiveCounts()
    """Single tubes (pools of one included) whose latest call is positive / suspicious."""
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
    """Sealed at the point to result: the road and the lab."""
    in_lab_hours: Turnaround = Turnaround()
    """Received by this lab to result: the lab's own speed."""


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
    timezone: str = "Asia/Shanghai"
    """The deployment's zone (``SCREENING_TIMEZONE``): pages show times in it."""


class PointPace(BaseModel):
    """A sampling point against its share of the district (screening/progress/pace.py)."""

    sampling_point: str
    name: str
    district: str
    registered: int
    """People sampled here (each person once, at their first sample of the round)."""
    samples: int
    unshipped_tubes: int
    """Tubes open or sealed here, not yet in a box."""
    boxes_late: int
    target: int
    """People this point is expected to swab in the round: the district's population
    in proportion to the point's swabbing capacity."""
    expected: int
    """People it should have swabbed by now, swabbing evenly through the sampling window."""
    pace: float | None
    """registered / expected; None before anyone is expected."""
    lagging: bool
    """Under 80% of the expected pace, or a box late on the road."""


class PointPacePage(BaseModel):
    items: list[PointPace]
    next_cursor: str | None = None
    total: int
    lagging: int
    """Lagging points in the whole round (not only this page)."""


class RecentEvent(BaseModel):
    """One de-pooling event, as the live feed (``GET /events``) sends it."""

    model_config = ConfigDict(populate_by_name=True)

    id: int
    kind: str
    round_id: int
    case_id: int
    sampling_point: str
    resident_code: str | None
    from_: str | None = Field(default=None, alias="from")
    to: str | None
    at: datetime


class RecentEvents(BaseModel):
    items: list[RecentEvent]
    """Newest first."""
    last_id: int
    """The newest event id of any round when the list was read: follow the live feed
    from here (``GET /events?after=``) and nothing is missed or seen twice."""
