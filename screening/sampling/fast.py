"""The single scan without FastAPI's routing and dependency machinery (issue 15).

``POST /api/v1/rounds/{round_id}/samples`` is the one request a city sends millions
of times a day. Measured in-process (bench/request_cost.py), FastAPI's route matching
over every route of the service, its dependency solving (generator dependencies run
inside anyio cancel scopes and context managers) and its response validation cost the
service more CPU than the scan's own work. :class:`ScanFastPath` sits inside every
other middleware (request id, access log, metrics, body limit, NUL check all still
apply) and answers the ordinary scan itself, with the same parts the route uses: the
body through :class:`SampleCreate`, the token through the same cache, the session
a pooled connection committed or rolled back as :func:`screening.db.get_db_session`
does with a session (:func:`screening.db.request_connection`; an ORM session costs
more to set up than the scan's statements), the service's
:func:`screening.sampling.service.take_sample`, refusals through
:func:`screening.errors.problem_response`.

Anything not ordinary is handed, body and all, to the FastAPI route, so it is
answered exactly as before: a body that does not validate (the route's 422 names the
fields), no token or one not in the cache (the route looks it up and fills the
cache), a role the route refuses, a path parameter out of range. The route stays the
contract's definition (OpenAPI, /docs) and its fallback.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import ValidationError
from starlette.types import ASGIApp, Receive, Scope, Send

from screening.auth import bearer_token_of, known_principal
from screening.db import request_connection
from screening.errors import AppError, problem_response
from screening.fastpath import RouteTemplate, read_body, replaying, send_json
from screening.metrics import SCAN_ROUTE
from screening.sampling import service
from screening.sampling.schemas import SampleCreate
from screening.tokens.service import Principal, TokenCache

_PATH = re.compile(r"/api/v1/rounds/([1-9][0-9]{0,9})/samples")
_MAX_ID = 2**31 - 1
_ROLES = frozenset({"admin", "sampler"})


ROUTE = RouteTemplate(SCAN_ROUTE)


class ScanFastPath:
    answered = 0  # scans this path answered itself, all instances together (tests read it)

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = (
            _PATH.fullmatch(scope["path"])
            if scope["type"] == "http" and scope["method"] == "POST"
            else None
        )
        if match is None or int(match[1]) > _MAX_ID:
            await self.app(scope, receive, send)
            return
        body, messages = await read_body(receive)
        state = scope["app"].state
        principal = _cached_principal(scope, state.settings.admin_token, state.token_cache)
        scan = None
        if principal is not None and principal.role in _ROLES:
            try:
                scan = SampleCreate.model_validate_json(body)
            except ValidationError:
                scan = None
        if scan is None or principal is None:  # the route answers it, as it always did
            await self.app(scope, replaying(messages, receive), send)
            return
        scope["route"] = ROUTE
        try:
            async with request_connection(scope["app"]) as db:
                taken = await service.take_sample(
                    db,
                    principal,
                    state.vault,
                    round_id=int(match[1]),
                    tube=scan.tube,
                    resident_code=scan.resident_code,
                    kind=scan.kind,
                    event_id=scan.event_id,
                    in_transaction=state.settings.database_pooler,
                )
        except AppError as exc:
            await problem_response(exc)(scope, receive, send)
            return
        ScanFastPath.answered += 1
        await send_json(send, 201, taken.model_dump_json().encode())


def _cached_principal(scope: Scope, admin_token: str | None, cache: TokenCache) -> Principal | None:
    """The caller when known without the database; None sends the request to the
    route (no token, an unknown or refused one, or one the cache must look up)."""
    token = bearer_token_of(scope)
    if token is None:
        return None
    known, principal = known_principal(token, admin_token, cache)
    return principal if known else None


def install(app: Any) -> None:
    """Add the fast path; call before every other ``add_middleware`` (innermost)."""
    app.add_middleware(ScanFastPath)
