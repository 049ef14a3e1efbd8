from fastapi import APIRouter

from screening.auth import AdminOnly
from screening.db import DbSession
from screening.tokens import service
from screening.tokens.schemas import TokenCreate, TokenIssued

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
