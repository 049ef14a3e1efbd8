from datetime import datetime
from typing import Literal

from pydantic import Field

from screening.schemas import Schema


class TokenCreate(Schema):
    role: Literal["admin", "sampler", "lab", "platform"]
    sampling_point: str | None = Field(default=None, max_length=32)
    lab: str | None = Field(default=None, max_length=32)
    label: str | None = Field(default=None, max_length=200)


class TokenIssued(Schema):
    token: str = Field(description="shown once; only its hash is stored")
    id: int
    role: str
    sampling_point: str | None
    lab: str | None
    label: str | None


class TokenRead(Schema):
    """A token as listed: never its secret (only its hash is stored anyway)."""

    id: int
    role: str
    sampling_point: str | None
    lab: str | None
    label: str | None
    created_at: datetime
    revoked_at: datetime | None
