"""Bearer tokens and roles (API.md, Auth): ``require(...)`` dependencies for routers.

``SCREENING_ADMIN_TOKEN``, when set, is an admin token (the bootstrap); every other
token is looked up by its hash.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from starlette.types import Scope

from screening.config import Settings
from screening.db import DbSession
from screening.errors import Forbidden, Unauthenticated
from screening.tokens.service import Principal, TokenCache, hash_token, resolve_token

ADMIN = Principal(role="admin")


def bearer_token(request: Request) -> str | None:
    return parse_bearer(request.headers.get("authorization", ""))


def bearer_token_of(scope: Scope) -> str | None:
    """The same, read from an ASGI scope (for a pure ASGI handler)."""
    for name, value in scope["headers"]:
        if name == b"authorization":
            return parse_bearer(value.decode("latin-1"))
    return None


def parse_bearer(header: str) -> str | None:
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def known_principal(
    token: str, admin_token: str | None, cache: TokenCache
) -> tuple[bool, Principal | None]:
    """``(True, principal)`` when the caller is known without the database: the admin
    token, or a token the cache holds and may trust now (``principal`` None: refused)."""
    if admin_token and hmac.compare_digest(token.encode(), admin_token.encode()):
        return True, ADMIN
    return cache.get(hash_token(token))


async def current_principal(request: Request, session: DbSession) -> Principal:
    token = bearer_token(request)
    if token is None:
        raise Unauthenticated("send Authorization: Bearer <token>")
    settings: Settings = request.app.state.settings
    cache: TokenCache = request.app.state.token_cache
    known, principal = known_principal(token, settings.admin_token, cache)
    if not known:
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
