"""Bearer tokens and roles (API.md, Auth): ``require(...)`` dependencies for routers.

``SCREENING_ADMIN_TOKEN``, when set, is an admin token (the bootstrap); every other
token is looked up by its hash.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request

from screening.config import Settings
from screening.db import DbSession
from screening.errors import Forbidden, Unauthenticated
from screening.tokens.service import Principal, TokenCache, resolve_token

ADMIN = Principal(role="admin")


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


async def current_principal(request: Request, session: DbSession) -> Principal:
    token = bearer_token(request)
    if token is None:
        raise Unauthenticated("send Authorization: Bearer <token>")
    settings: Settings = request.app.state.settings
    if settings.admin_token and hmac.compare_digest(token.encode(), settings.admin_token.encode()):
        return ADMIN
    cache: TokenCache = request.app.state.token_cache
    principal = await resolve_token(session, token, cache)
    if principal is None:
        raise Unauthenticated("unknown or revoked token")
    return principal


def require(*roles: str) -> Callable[..., Awaitable[Principal]]:
    """A dependency that lets only ``roles`` through (401 without a token, 403 otherwise)."""

    async def dependency(
        principal: Annotated[Principal, Depends(current_principal)],
    ) -> Principal:
        if principal.role not in roles:
            raise Forbidden(f"this needs a token of role {' or '.join(roles)}")
        return principal

    return dependency


AdminOnly = Annotated[Principal, Depends(require("admin"))]
AdminOrSampler = Annotated[Principal, Depends(require("admin", "sampler"))]
AdminOrLab = Annotated[Principal, Depends(require("admin", "lab"))]
AnyRole = Annotated[Principal, Depends(require("admin", "sampler", "lab"))]
SamplerOnly = Annotated[Principal, Depends(require("sampler"))]
PlatformOnly = Annotated[Principal, Depends(require("platform"))]
