from typing import Annotated, Any

import anyio
from fastapi import APIRouter, File, Request, Response, UploadFile
from fastapi.responses import StreamingResponse

from screening.auth import AdminOnly, AdminOrSampler
from screening.db import DbSession, HeavySession, lent
from screening.errors import AppError, NotFound
from screening.privacy import Vault
from screening.residents import census, query, service
from screening.residents.qr import qr_svg
from screening.residents.ratelimit import FailureLimiter, admit
from screening.residents.schemas import (
    DistrictChoice,
    ImportSummary,
    ResidentCode,
    ResidentCreate,
    ResidentRead,
    ResultAnswer,
    ResultQuery,
    SelfRegistration,
)

router = APIRouter(tags=["residents"])

KNOWN: dict[int | str, dict[str, Any]] = {
    200: {"model": ResidentCode, "description": "already registered: the same code"}
}


def _vault(request: Request) -> Vault:
    vault: Vault = request.app.state.vault
    return vault


async def _client(request: Request) -> tuple[FailureLimiter, str]:
    """The failure limiter shared by the query and self-registration, and the caller."""
    limiter: FailureLimiter = request.app.state.query_limiter
    client = request.client.host if request.client else "unknown"
    await admit(limiter, client)
    return limiter, client


@router.post("/residents", status_code=201, response_model=ResidentCode, responses=KNOWN)
async def register_resident(
    body: ResidentCreate,
    request: Request,
    response: Response,
    session: DbSession,
    principal: AdminOrSampler,
) -> ResidentCode:
    """Register a resident (admin, or a sampler for a walk-in: ``district`` defaults
    to the point's); a person already known gets the same code back (200)."""
    default = None
    if principal.role == "sampler" and principal.sampling_point_id is not None:
        default = await service.district_of_point(session, principal.sampling_point_id)
    code, created = await service.register_resident(
        session, _vault(request), body, default_district=default
    )
    if not created:
        response.status_code = 200
    return await service.answer_for(session, _vault(request), code, body.name, created=created)


@router.post("/residents/self", status_code=201, response_model=ResidentCode, responses=KNOWN)
async def register_self(
    body: SelfRegistration, request: Request, response: Response, session: DbSession
) -> ResidentCode:
    """A resident registers themselves or a family member (no token; refusals count
    towards the same per-client limit as the result query)."""
    limiter, client = await _client(request)
    try:
        code, created = await service.register_resident(session, _vault(request), body)
    except AppError:
        await limiter.record_failure(client)
        raise
    if not created:
        response.status_code = 200
    return await service.answer_for(session, _vault(request), code, body.name, created=created)


@router.get("/residents/self/districts", response_model=list[DistrictChoice])
async def districts_for_self(session: DbSession) -> list[DistrictChoice]:
    """The districts a resident may pick on /me (no token: codes and names only)."""
    return await service.district_choices(session)


@router.post(
    "/residents/import",
    response_model=ImportSummary,
    response_class=StreamingResponse,
    responses={200: {"content": {"application/json": {}}}},
)
async def import_residents(
    request: Request, session: HeavySession, _: AdminOnly, file: Annotated[UploadFile, File()]
) -> StreamingResponse:
    """Register a census CSV (id_type,id_number,name,district; optional phone,
    nationality, community, address), streamed in batches; bad lines come back."""
    tally = await census.import_census(
        session,
        _vault(request),
        file.file,
        process_above_bytes=request.app.state.settings.census_process_above_bytes,
        duty=request.app.state.settings.census_duty,
    )
    return StreamingResponse(tally.chunks(), media_type="application/json")


@router.get(
    "/residents/{resident_code}/qr.svg",
    response_class=Response,
    responses={200: {"content": {"image/svg+xml": {}}, "description": "the code as a QR"}},
)
async def resident_qr(resident_code: str, session: DbSession) -> Response:
    """The resident code as a QR code (SVG, no token): nothing but the code is in it."""
    if not await service.resident_exists(session, resident_code):
        raise NotFound("没有这个居民码。")
    svg = await anyio.to_thread.run_sync(qr_svg, resident_code)
    return Response(
        svg, media_type="image/svg+xml", headers={"Cache-Control": "public, max-age=86400"}
    )


@router.get("/residents/{resident_code}", response_model=ResidentRead)
async def read_resident(
    resident_code: str, request: Request, session: DbSession, _: AdminOrSampler
) -> ResidentRead:
    """A resident by personal code, masked (what a clerk sees after a scan); a lab has
    no need for it (403)."""
    return await service.read_resident(session, _vault(request), resident_code)


@router.post("/results/query", response_model=ResultAnswer, tags=["residents"])
async def query_results(body: ResultQuery, request: Request, session: DbSession) -> ResultAnswer:
    """A resident's own results: one item per round, newest first, with the reporting
    lab and the report time in the deployment's zone (no token). The ordinary query is
    answered by ``screening.residents.fast.QueryFastPath`` with the same function."""
    client = request.client.host if request.client else "unknown"
    return await query.answer_query(lambda: lent(session), request.app.state, client, body)
