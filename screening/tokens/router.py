from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel
from sqlalchemy import text

from screening.auth import AdminOnly, AnyRole
from screening.db import DbSession
from screening.schemas import Id32, Page, page_of, parse_cursor
from screening.tokens import service
from screening.tokens.schemas import TokenCreate, TokenIssued, TokenRead

router = APIRouter(tags=["reference data"])


@router.post("/tokens", status_code=201, response_model=TokenIssued)
async def create_token(body: TokenCreate, session: DbSession, _: AdminOnly) -> TokenIssued:
    """Issue a token for a role (a sampler's is bound to its point, a lab's to its lab)."""
    issued = await service.create_token(session, **body.model_dump())
    return TokenIssued(
        token=issued.token,
        id=issued.id,
        role=issued.role,
        sampling_point=issued.sampling_point,
        lab=issued.lab,
        label=issued.label,
    )


class Me(BaseModel):
    role: str
    sampling_point: str | None = None
    district: str | None = None
    lab: str | None = None


@router.get("/tokens/me", response_model=Me)
async def who_am_i(session: DbSession, principal: AnyRole) -> Me:
    """Who this token is: its role and what it is bound to (the field pages ask)."""
    row = (
        await session.execute(
            text(
                "SELECT p.code AS point, d.code AS district, l.code AS lab"
                " FROM (SELECT 1) one"
                " LEFT JOIN sampling_points p ON p.id = :point"
                " LEFT JOIN districts d ON d.id = p.district_id"
                " LEFT JOIN labs l ON l.id = :lab"
            ),
            {"point": principal.sampling_point_id, "lab": principal.lab_id},
        )
    ).one()
    return Me(role=principal.role, sampling_point=row.point, district=row.district, lab=row.lab)


@router.get("/tokens", response_model=Page[TokenRead])
async def list_tokens(
    session: DbSession,
    _: AdminOnly,
    revoked: bool | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: str | None = None,
) -> Page[TokenRead]:
    """Issued tokens in issue order, without their secrets (``revoked``: only revoked
    ones, or only working ones)."""
    tokens = await service.list_tokens(
        session, revoked=revoked, after=parse_cursor(cursor), limit=limit
    )
    items = [TokenRead(**asdict(t)) for t in tokens]
    return page_of(items, limit, items[-1].id if items else None)


@router.post("/tokens/{token_id}/revoke", response_model=TokenRead)
async def revoke_token(
    token_id: Id32, request: Request, session: DbSession, principal: AdminOnly
) -> TokenRead:
    """Revoke a token (a lost phone's): refused from now on, by every process within a
    second. Revoking a revoked token changes nothing."""
    revoked = await service.revoke_token(session, principal, token_id)
    request.app.state.token_cache.invalidate()
    return TokenRead(**asdict(revoked))
