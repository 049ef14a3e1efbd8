"""The feed's answers (API.md v1.1, "Results out to the health-code platform")."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel


class FeedResident(BaseModel):
    """The full identity: the platform is entitled to it (and every read is audited)."""

    id_type: str
    id_number: str
    name: str
    nationality: str | None = None


class FeedItem(BaseModel):
    seq: int
    resident: FeedResident
    round_id: int
    status: Literal["pending", "negative", "retest", "positive", "invalid"]
    result_kind: Literal["final", "provisional"]
    """``final`` for negative, positive and invalid; ``provisional`` while the standing
    may still move: pending, and retest (a pool positive, 混管可疑阳性, or a suspicious
    single)."""
    tube: str | None
    pooled: bool
    sampled_at: datetime
    reported_at: datetime | None
    lab: str | None


class FeedPage(BaseModel):
    items: list[FeedItem]
    next_cursor: str
    """Pass as ``after`` to resume; the same as ``after`` when nothing new came."""
