from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from screening.auth import PlatformOnly
from screening.db import DbSession
from screening.feed import service
from screening.feed.fhir import feed_bundle
from screening.feed.schemas import FeedPage
from screening.schemas import INT64_MAX

router = APIRouter(tags=["results out"])

After = Annotated[int, Query(ge=0, le=INT64_MAX, description="the cursor of the last page")]
FeedLimit = Annotated[int, Query(ge=1, le=5000)]


@router.get("/feed/results", response_model=FeedPage, response_class=Response)
async def feed_results(
    request: Request,
    session: DbSession,
    principal: PlatformOnly,
    after: After = 0,
    limit: FeedLimit = 1000,
) -> Response:
    """Changes of people's standing after a cursor, in commit order, each exactly once
    from any cursor; full identities (platform tokens only; every read audited)."""
    body = await service.read_feed(
        session, principal, request.app.state.vault, after=after, limit=limit
    )
    return Response(body, media_type="application/json")


@router.get(
    "/feed/results.fhir",
    response_class=Response,
    responses={200: {"content": {"application/fhir+json": {}}, "description": "FHIR Bundle"}},
)
async def feed_results_fhir(
    request: Request,
    session: DbSession,
    principal: PlatformOnly,
    after: After = 0,
    limit: FeedLimit = 1000,
) -> Response:
    """The same changes as a FHIR R4 Bundle (collection) of Observations; the Bundle's
    meta.tag carries the cursor to resume from."""
    rows = await service.read_changes(
        session, principal, request.app.state.vault, after=after, limit=limit, view="fhir"
    )
    bundle = feed_bundle(rows, rows[-1].seq if rows else after)
    return Response(bundle.model_dump_json(exclude_none=True), media_type="application/fhir+json")
