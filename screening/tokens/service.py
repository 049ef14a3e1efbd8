"""Issuing and resolving bearer tokens. Tokens are random; only their SHA-256 is kept."""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from screening.errors import NotFound, Unprocessable
from screening.reference.models import Lab, SamplingPoint
from screening.tokens.models import ApiToken

ROLES = ("admin", "sampler", "lab", "platform")


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a role, and the one place it is bound to."""

    role: str
    sampling_point_id: int | None = None
    lab_id: int | None = None
    token_id: int | None = None


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: str
    id: int
    role: str
    sampling_point: str | None
    lab: str | None
    label: str | None


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def create_token(
    session: AsyncSession,
    *,
    role: str,
    sampling_point: str | None = None,
    lab: str | None = None,
    label: str | None = None,
) -> IssuedToken:
    if role not in ROLES:
        raise Unprocessable(f"role must be one of {', '.join(ROLES)}")
    point_id = lab_id = None
    if role == "sampler":
        if not sampling_point or lab:
            raise Unprocessable("a sampler token names one sampling_point (and no lab)")
        point_id = await session.scalar(
            select(SamplingPoint.id).where(SamplingPoint.code == sampling_point)
        )
        if point_id is None:
            raise NotFound(f"no sampling point {sampling_point!r}")
    elif role == "lab":
        if not lab or sampling_point:
            raise Unprocessable("a lab token names one lab (and no sampling_point)")
        lab_id = await session.scalar(select(Lab.id).where(Lab.code == lab))
        if lab_id is None:
            raise NotFound(f"no lab {lab!r}")
    elif sampling_point or lab:
        raise Unprocessable(f"a {role} token is bound to no sampling point or lab")
    token = secrets.token_urlsafe(32)
    token_id = await session.scalar(
        insert(ApiToken)
        .values(
            token_hash=hash_token(token),
            role=role,
            sampling_point_id=point_id,
            lab_id=lab_id,
            label=label,
        )
        .returning(ApiToken.id)
    )
    assert token_id is not None
    return IssuedToken(
        token, token_id, role, sampling_point if point_id else None, lab if lab_id else None, label
    )


class TokenCache:
    """Resolved tokens for a few seconds, so the scan hot path skips a query per call.

    A revoked token stays usable for at most ``ttl`` seconds.
    """

    def __init__(self, ttl: float, max_entries: int = 100_000) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: dict[str, tuple[float, Principal | None]] = {}

    def get(self, token_hash: str) -> tuple[bool, Principal | None]:
        hit = self._entries.get(token_hash)
        if hit is None or hit[0] < time.monotonic():
            return False, None
        return True, hit[1]

    def put(self, token_hash: str, principal: Principal | None) -> None:
        if len(self._entries) >= self.max_entries:
            self._entries.clear()
        self._entries[token_hash] = (time.monotonic() + self.ttl, principal)


async def resolve_token(session: AsyncSession, token: str, cache: TokenCache) -> Principal | None:
    digest = hash_token(token)
    known, principal = cache.get(digest)
    if known:
        return principal
    row = (
        await session.execute(
            select(ApiToken.id, ApiToken.role, ApiToken.sampling_point_id, ApiToken.lab_id).where(
                ApiToken.token_hash == digest, ApiToken.revoked_at.is_(None)
            )
        )
    ).first()
    principal = Principal(row.role, row.sampling_point_id, row.lab_id, row.id) if row else None
    cache.put(digest, principal)
    return principal
