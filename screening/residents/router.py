from typing import Annotated

from fastapi import APIRouter, File, Request, Response, UploadFile

from screening.auth import AdminOnly, AdminOrSampler
from screening.db import DbSession, HeavySession
from screening.errors import NotFound, TooManyRequests
from screening.privacy import Vault
from screening.residents import service
from screening.residents.ratelimit import FailureLimiter
from screening.residents.schemas import (
    ImportSummary,
    ResidentCode,
    ResidentCreate,
    ResidentRead,
    ResultAnswer,
    ResultQuery,
)

router = APIRouter(tags=["residents"])


def _vault(request: Request) -> Vault:
    vault: Vault = request.app.state.vault
    return vault


@router.post(
    "/residents",
    status_code=201,
    response_model=ResidentCode,
    responses={200: {"model": ResidentCode, "description": "already registered: the same code"}},
)
async def register_resident(
    body: ResidentCreate, request: Request, response: Response, session: DbSession, _: AdminOnly
) -> ResidentCode:
    """Register a resident; a person already known gets the same code back (200)."""
    code, created = await service.register_resident(session, _vault(request), body)
    if not created:
        response.status_code = 200
    return ResidentCode(resident_code=code)


@router.post("/residents/import", response_model=ImportSummary)
async def import_residents(
    request: Request, session: HeavySession, _: AdminOnly, file: Annotated[UploadFile, File()]
) -> ImportSummary:
    """Register a census CSV (id_type,id_number,name,phone,district); bad lines come back."""
    return await service.import_residents(session, _vault(request), file.file)


@router.get("/residents/{resident_code}", response_model=ResidentRead)
async def read_resident(
    resident_code: str, request: Request, session: DbSession, _: AdminOrSampler
) -> ResidentRead:
    """A resident by personal code, masked (what a clerk sees after a scan); a lab has
    no need for it (403)."""
    return await service.read_resident(session, _vault(request), resident_code)


@router.post("/results/query", response_model=ResultAnswer, tags=["residents"])
async def query_results(body: ResultQuery, request: Request, session: DbSession) -> ResultAnswer:
    """A resident's own results: one item per round, newest first (no token)."""
    limiter: FailureLimiter = request.app.state.query_limiter
    client = request.client.host if request.client else "unknown"
    wait = await limiter.retry_after(client)
    if wait is not None:
        raise TooManyRequests("too many failed queries; wait and try again", retry_after=wait)
    items = await service.query_standings(session, _vault(request), body.id_number, body.name)
    if items is None:
        await limiter.record_failure(client)
        raise NotFound("no results for this ID number and name")
    return ResultAnswer(items=items)
