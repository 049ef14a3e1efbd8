"""The resident's query without FastAPI's routing and dependency machinery (issue 15).

``POST /api/v1/results/query`` is what a city's phones send all day, and most in the
hour a round's results come out. Like the scan's (``screening.sampling.fast``), this
handler sits inside every middleware and answers the ordinary query itself with the
route's own function (``screening.residents.query.answer_query``: the failure limit,
the look-up, the 404 that counts as a failure) on a pooled connection; a body that
does not validate goes to the route, which answers its 422 naming the fields.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from starlette.types import ASGIApp, Receive, Scope, Send

from screening.db import request_connection
from screening.errors import AppError, problem_response
from screening.fastpath import RouteTemplate, read_body, replaying, send_json
from screening.residents.query import answer_query
from screening.residents.schemas import ResultQuery

PATH = "/api/v1/results/query"
ROUTE = RouteTemplate(PATH)


class QueryFastPath:
    answered = 0  # queries this path answered itself (tests read it)

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != PATH:
            await self.app(scope, receive, send)
            return
        body, messages = await read_body(receive)
        try:
            ask = ResultQuery.model_validate_json(body)
        except ValidationError:  # the route answers it, as it always did
            await self.app(scope, replaying(messages, receive), send)
            return
        scope["route"] = ROUTE
        QueryFastPath.answered += 1
        client = scope["client"][0] if scope.get("client") else "unknown"
        app = scope["app"]
        try:
            answer = await answer_query(lambda: request_connection(app), app.state, client, ask)
        except AppError as exc:
            await problem_response(exc)(scope, receive, send)
            return
        await send_json(send, 200, answer.model_dump_json().encode())


def install(app: Any) -> None:
    """Add the fast path; call before every other ``add_middleware`` (innermost)."""
    app.add_middleware(QueryFastPath)
