"""Issuing and resolving bearer tokens. Tokens are random; only their SHA-256 is kept."""

from __future__ import annotations

import hashlib
import logging
import math
import secrets
import time
from dataclasses import dataclass
from datetime import datetime

import anyio
from sqlalchemy import insert, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from screening.errors import NotFound, Unprocessable
from screening.reference.models import Lab, SamplingPoint
from screening.tokens.models import ApiToken

log = logging.getLogger(__name__)

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


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """A token as listed: who holds it and whether it still works, never the secret."""

    id: int
    role: str
    sampling_point: str | None
    lab: str | None
    label: str | None
    created_at: datetime
    revoked_at: datetime | None


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


_TOKENS = text("""
SELECT t.id, t.role, p.code AS sampling_point, l.code AS lab, t.label, t.created_at,
       t.revoked_at
FROM api_tokens t
LEFT JOIN sampling_points p ON p.id = t.sampling_point_id
LEFT JOIN labs l ON l.id = t.lab_id
WHERE t.id > :after
  AND (CAST(:revoked AS boolean) IS NULL OR (t.revoked_at IS NOT NULL) = :revoked)
ORDER BY t.id
LIMIT :limit
""")


async def list_tokens(
    session: AsyncSession, *, revoked: bool | None = None, after: int = 0, limit: int = 100
) -> list[TokenRecord]:
    """Tokens in issue order (``revoked``: only revoked ones, or only working ones)."""
    rows = await session.execute(_TOKENS, {"after": after, "revoked": revoked, "limit": limit})
    return [TokenRecord(*row) for row in rows.all()]


_REVOKE = text("""
WITH revoked AS (
    UPDATE api_tokens SET revoked_at = now()
    WHERE id = :id AND revoked_at IS NULL
    RETURNING id
)
INSERT INTO audit_log (role, token_id, action, subject, detail)
SELECT :role, :actor, 'token-revoked', 'api_token:' || id, '{}' FROM revoked
""")


async def revoke_token(session: AsyncSession, by: Principal, token_id: int) -> TokenRecord:
    """Revoke a token (a lost phone's): it is refused from now on, in every process
    within a second (see :class:`RevocationWatch`). Revoking it again changes nothing."""
    await session.execute(_REVOKE, {"id": token_id, "role": by.role, "actor": by.token_id})
    row = (
        await session.execute(_TOKENS.bindparams(after=token_id - 1, revoked=None, limit=1))
    ).first()
    if row is None or row.id != token_id:
        raise NotFound(f"no token {token_id}")
    return TokenRecord(*row)


class TokenCache:
    """Resolved tokens for ``ttl`` seconds, so the scan hot path skips a query per call.

    Entries are trusted only while a revocation check (:func:`watch_revocations`, one
    per process) has run within ``fresh_for`` seconds: a token revoked in any process
    is refused everywhere within about a second, and when the checks stall (no
    database) the cache is simply not used. Without a running watch (tests, scripts)
    every call looks the token up.
    """

    def __init__(self, ttl: float, max_entries: int = 100_000, fresh_for: float = 1.0) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self.fresh_for = fresh_for
        self.generation = 0
        self._entries: dict[str, tuple[float, Principal | None]] = {}
        self._checked_at = -math.inf
        self._revoked_seen: int | None = None

    def get(self, token_hash: str) -> tuple[bool, Principal | None]:
        now = time.monotonic()
        if now - self._checked_at > self.fresh_for:
            return False, None
        hit = self._entries.get(token_hash)
        if hit is None or hit[0] < now:
            return False, None
        return True, hit[1]

    def put(self, token_hash: str, principal: Principal | None, generation: int) -> None:
        """Keep a look-up made while the cache was at ``generation``; one that started
        before the latest invalidation may predate a revocation and is dropped."""
        if generation != self.generation or self.ttl <= 0:
            return
        if len(self._entries) >= self.max_entries:
            self._entries.clear()
        self._entries[token_hash] = (time.monotonic() + self.ttl, principal)

    def invalidate(self) -> None:
        self.generation += 1
        self._entries.clear()

    def observe(self, revoked_count: int, checked_at: float) -> None:
        """A revocation check that started at ``checked_at`` saw ``revoked_count``
        revoked tokens (a number that only grows): empty the cache when it moved."""
        if revoked_count != self._revoked_seen:
            self.invalidate()
            self._revoked_seen = revoked_count
        self._checked_at = checked_at


REVOCATION_CHECK_SECONDS = 0.25
_REVOKED_COUNT = text("SELECT count(*) FROM api_tokens WHERE revoked_at IS NOT NULL")


async def watch_revocations(
    engine: AsyncEngine, cache: TokenCache, interval: float = REVOCATION_CHECK_SECONDS
) -> None:
    """Check for new revocations every ``interval`` seconds until cancelled, on one
    connection held for it (no pool checkout and ping per check)."""
    while True:
        try:
            async with engine.connect() as conn:
                while True:
                    started = time.monotonic()
                    revoked = int(await conn.scalar(_REVOKED_COUNT) or 0)
                    await conn.rollback()  # never idle in a transaction
                    cache.observe(revoked, started)
                    await anyio.sleep(interval)
        except Exception as exc:  # no database: the cache goes stale and is not used
            log.warning("token revocation check failed: %s", type(exc).__name__)
        await anyio.sleep(interval)


async def resolve_token(session: AsyncSession, token: str, cache: TokenCache) -> Principal | None:
    digest = hash_token(token)
    known, principal = cache.get(digest)
    if known:
        return principal
    generation = cache.generation
    row = (
        await session.execute(
            select(ApiToken.id, ApiToken.role, ApiToken.sampling_point_id, ApiToken.lab_id).where(
                ApiToken.token_hash == digest, ApiToken.revoked_at.is_(None)
            )
        )
    ).first()
    principal = Principal(row.role, row.sampling_point_id, row.lab_id, row.id) if row else None
    cache.put(digest, principal, generation)
    return principal
