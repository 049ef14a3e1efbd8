"""De-pooling answers (API.md, De-pooling): names, ID numbers and phones masked."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel

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


class RetestList(BaseModel):
    items: list[CaseRead]
    next_cursor: str | None = None


class HistoryEntry(BaseModel):
    at: datetime
    kind: str
    resident_code: str | None
    from_status: str | None
    to_status: str | None
    actor: str


class CaseDetail(CaseRead):
    history: list[HistoryEntry]
