"""De-pooling answers (API.md, De-pooling): names, ID numbers and phones masked."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel

from screening.schemas import Page

MemberStatus = Literal["to-recall", "resampled", "negative", "positive", "invalid"]


class MemberRead(BaseModel):
    resident_code: str
    name_masked: str
    id_masked: str
    phone_masked: str | None
    status: MemberStatus
    single_tube: str | None = None
    overdue: bool = False
    """Not re-sampled within the configured time (default 2 h) of being recalled."""


class CaseRead(BaseModel):
    case_id: int
    status: Literal["open", "resolved"]
    pool_tube: str
    pool_result: Literal["positive", "suspicious"]
    sampling_point: str
    lab: str | None
    opened_at: datetime
    resolved_at: datetime | None
    age_minutes: float
    """Minutes from opening to resolution, or to now while open."""
    overdue: bool
    """Open longer than the configured time (default 6 h)."""
    discordant: bool | None
    """Resolved with no positive member: the pool was positive, every person negative."""
    members: list[MemberRead]


RetestList = Page[CaseRead]


class HistoryEntry(BaseModel):
    at: datetime
    kind: str
    resident_code: str | None
    from_status: str | None
    to_status: str | None
    actor: str


class CaseDetail(CaseRead):
    history: list[HistoryEntry]


class Interval(BaseModel):
    low: float
    high: float


class DistrictAdvice(BaseModel):
    district: str
    pool_size: int
    """The pool size this round used there."""
    tested: int
    """People with a result in this round (pooled or single)."""
    positive: int
    """People with a positive (or suspicious) single result."""
    prevalence: float | None
    interval: Interval
    """95% Wilson score interval of the prevalence."""
    expected_tests: dict[int, float]
    """Dorfman tests per person for n = 1, 5, 10, 20, at the interval's upper bound."""
    ct_shift: dict[int, float]
    """Cycles a positive's Ct moves later in a pool of n (log2 n)."""
    recommended: int
    reason: str


class AdviceRead(BaseModel):
    round_id: int
    districts: list[DistrictAdvice]
