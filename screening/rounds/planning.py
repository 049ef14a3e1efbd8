"""Round planning math (pure). Rules from China's mass-screening guideline:
every round finishes in 24 h; sampling itself takes 6 h (12 h at most); samplers =
population / 360 (one swab a minute for 6 hours); one sampling point per 2,000-3,000
people; lab capacity must cover the round's tubes inside the deadline.

Bottleneck per district, first that applies:
- sampling takes longer than the window (6 h, or the round if shorter):
  ``time`` when the round itself is shorter than 6 h but 6 h would do; else
  ``samplers`` when there are at least as many stations as the guideline's samplers
  (the stations swab too slowly: more hands per station), else ``stations``;
- ``labs`` when the round's tubes exceed what the labs test inside the round.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

SAMPLING_WINDOW_HOURS = 6.0
MAX_SAMPLING_HOURS = 12.0
SWABS_PER_SAMPLER = 360
POOL_SIZES = (1, 5, 10, 20)


@dataclass(frozen=True, slots=True)
class DistrictInput:
    code: str
    population: int
    sampling_points: int
    stations: int
    hourly_capacity: float
    pool_size: int


@dataclass(frozen=True, slots=True)
class LabInput:
    code: str
    daily_capacity_tubes: int


@dataclass(frozen=True, slots=True)
class LabShare:
    lab: str
    tubes: int


@dataclass(frozen=True, slots=True)
class DistrictPlan:
    code: str
    population: int
    pool_size: int
    sampling_points: int
    stations: int
    hourly_capacity: float
    hours_needed: float | None
    tubes_needed: int
    samplers_needed: int
    lab_allocation: list[LabShare]
    feasible: bool
    bottleneck: str | None


@dataclass(frozen=True, slots=True)
class LabPlan:
    lab: str
    capacity: int
    allocated: int


@dataclass(frozen=True, slots=True)
class RoundPlan:
    round_hours: float
    sampling_window_hours: float
    population: int
    tubes_needed: int
    samplers_needed: int
    lab_capacity: int
    feasible: bool
    districts: list[DistrictPlan]
    labs: list[LabPlan]


def tubes_needed(population: int, pool_size: int) -> int:
    if pool_size not in POOL_SIZES:
        raise ValueError(f"pool size must be one of {POOL_SIZES}")
    if population < 0:
        raise ValueError("population cannot be negative")
    return math.ceil(population / pool_size)


def samplers_needed(population: int) -> int:
    if population < 0:
        raise ValueError("population cannot be negative")
    return math.ceil(population / SWABS_PER_SAMPLER)


def allocate(tubes: int, capacities: Sequence[int]) -> list[int]:
    """Split ``tubes`` in proportion to ``capacities`` (largest remainder, ties by order)."""
    total = sum(capacities)
    if total <= 0:
        return [0] * len(capacities)
    exact = [tubes * c / total for c in capacities]
    shares = [math.floor(x) for x in exact]
    order = sorted(range(len(capacities)), key=lambda i: (-(exact[i] - shares[i]), i))
    for i in order[: tubes - sum(shares)]:
        shares[i] += 1
    return shares


def plan_round(
    districts: Sequence[DistrictInput],
    labs: Sequence[LabInput],
    starts_at: datetime,
    deadline: datetime,
) -> RoundPlan:
    if deadline <= starts_at:
        raise ValueError("the deadline must come after the start")
    round_hours = (deadline - starts_at).total_seconds() / 3600
    window = min(SAMPLING_WINDOW_HOURS, round_hours)
    if any(lab.daily_capacity_tubes < 0 for lab in labs):
        raise ValueError("lab capacity cannot be negative")
    capacities = [math.floor(lab.daily_capacity_tubes * round_hours / 24) for lab in labs]
    lab_capacity = sum(capacities)
    tubes = [tubes_needed(d.population, d.pool_size) for d in districts]
    round_tubes = sum(tubes)
    allocated = [0] * len(labs)
    plans = []
    for district, district_tubes in zip(districts, tubes, strict=True):
        if min(district.sampling_points, district.stations, district.hourly_capacity) < 0:
            raise ValueError(f"district {district.code}: negative numbers")
        if district.population == 0:
            hours: float | None = 0.0
        elif district.hourly_capacity <= 0:
            hours = None
        else:
            hours = round(district.population / district.hourly_capacity, 2)
        samplers = samplers_needed(district.population)
        shares = allocate(district_tubes, capacities)
        for i, share in enumerate(shares):
            allocated[i] += share
        bottleneck: str | None = None
        if hours is None or hours > window:
            if (
                round_hours < SAMPLING_WINDOW_HOURS
                and hours is not None
                and hours <= SAMPLING_WINDOW_HOURS
            ):
                bottleneck = "time"
            elif district.stations >= samplers:
                bottleneck = "samplers"
            else:
                bottleneck = "stations"
        elif district_tubes > 0 and round_tubes > lab_capacity:
            bottleneck = "labs"
        plans.append(
            DistrictPlan(
                code=district.code,
                population=district.population,
                pool_size=district.pool_size,
                sampling_points=district.sampling_points,
                stations=district.stations,
                hourly_capacity=float(district.hourly_capacity),
                hours_needed=hours,
                tubes_needed=district_tubes,
                samplers_needed=samplers,
                lab_allocation=[
                    LabShare(lab.code, share)
                    for lab, share in zip(labs, shares, strict=True)
                    if share > 0
                ],
                feasible=bottleneck is None,
                bottleneck=bottleneck,
            )
        )
    return RoundPlan(
        round_hours=round(round_hours, 2),
        sampling_window_hours=round(window, 2),
        population=sum(d.population for d in districts),
        tubes_needed=round_tubes,
        samplers_needed=sum(p.samplers_needed for p in plans),
        lab_capacity=lab_capacity,
        feasible=all(p.feasible for p in plans),
        districts=plans,
        labs=[
            LabPlan(lab.code, cap, alloc)
            for lab, cap, alloc in zip(labs, capacities, allocated, strict=True)
        ],
    )
