"""Errors as RFC 9457 problem documents (API.md): one base, one handler.

Services raise these; routers never build HTTP errors themselves. Anything else that
escapes is a bug: a 500 with a log line naming the request, never a 4xx that hides it.
"""

from __future__ import annotations

import errno
import logging
import socket
from typing import Any

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Scope

log = logging.getLogger("screening")

PROBLEM_JSON = "application/problem+json"


class AppError(Exception):
    status: int = 500
    type: str = "internal-error"
    title: str = "Internal error"

    def __init__(
        self,
        detail: str | None = None,
        *,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.errors = errors
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "type": self.type,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if self.errors is not None:
            doc["errors"] = self.errors
        return doc


class BadRequest(AppError):
    status, type, title = 400, "bad-request", "Bad request"


class Unauthenticated(AppError):
    status, type, title = 401, "unauthenticated", "Missing or invalid token"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": "Bearer"})


class Forbidden(AppError):
    status, type, title = 403, "forbidden", "Not allowed for this token"


class NotFound(AppError):
    status, type, title = 404, "not-found", "Not found"


class Conflict(AppError):
    status, type, title = 409, "conflict", "Conflict"


class Duplicate(Conflict):
    type, title = "duplicate", "Already exists"


class PayloadTooLarge(AppError):
    status, type, title = 413, "payload-too-large", "Request body too large"


class Unprocessable(AppError):
    status, type, title = 422, "invalid-request", "Invalid request"


class TooManyRequests(AppError):
    status, type, title = 429, "too-many-requests", "Too many requests"

    def __init__(self, detail: str, *, retry_after: int) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after)})


class DatabaseUnavailable(AppError):
    status, type, title = 503, "database-unavailable", "Database unavailable"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(
            detail or "the database cannot be reached; try again shortly",
            headers={"Retry-After": "5"},
        )


class ServerBusy(AppError):
    """Heavy work (uploads, imports, PDFs) is at its limit: nothing was done, send it
    again after ``Retry-After`` seconds."""

    status, type, title = 503, "server-busy", "Too much heavy work under way"

    def __init__(self, detail: str, *, retry_after: int) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after)})


def problem_response(error: AppError) -> JSONResponse:
    return JSONResponse(
        error.body(), status_code=error.status, headers=error.headers, media_type=PROBLEM_JSON
    )


# OSErrors that mean "the other end cannot be reached", as opposed to a full disk or a
# missing file, which are bugs or operations problems of this machine and must say so.
_NETWORK_ERRNOS = {
    errno.ECONNREFUSED,
    errno.ECONNRESET,
    errno.ECONNABORTED,
    errno.EHOSTUNREACH,
    errno.ENETUNREACH,
    errno.ENETDOWN,
    errno.ETIMEDOUT,
    errno.EPIPE,
}
_DRIVER_MODULES = ("asyncpg", "sqlalchemy")
_CONNECTION_ERROR_NAMES = {
    "CannotConnectNowError",
    "ConnectionDoesNotExistError",
    "TooManyConnectionsError",
    "ConnectionFailureError",
}


def _driver_modules(exc: BaseException) -> set[str]:
    """The database driver's and pool's modules ``exc`` was raised through."""
    found = set()
    tb = exc.__traceback__
    while tb is not None:
        module = tb.tb_frame.f_globals.get("__name__", "")
        if module.startswith(_DRIVER_MODULES):
            found.add(module)
        tb = tb.tb_next
    return found


def _is_connection_os_error(exc: BaseException) -> bool:
    """An OSError of the database connection: a network error raised in the driver,
    or any OSError raised while it connects (its unix socket missing is ENOENT)."""
    if not isinstance(exc, OSError):
        return False
    modules = _driver_modules(exc)
    network = isinstance(exc, ConnectionError | TimeoutError | socket.gaierror) or (
        exc.errno in _NETWORK_ERRNOS
    )
    return bool(modules) and (network or "asyncpg.connect_utils" in modules)


def is_database_unavailable(exc: BaseException) -> bool:
    """Only a lost or refused database connection is ``503 database-unavailable``;
    any other error (an OSError from a full disk or a missing file included) is a 500
    logged with its traceback. SQLAlchemy wraps the driver's error (``orig``, whose
    cause is asyncpg's own), so the wrapped errors are looked at too."""
    inner = getattr(exc, "orig", None) or exc.__cause__
    return _is_connection_level(exc) or (
        inner is not None and inner is not exc and is_database_unavailable(inner)
    )


def _is_connection_level(exc: BaseException) -> bool:
    if isinstance(exc, OperationalError | InterfaceError | PoolTimeout):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    if type(exc).__name__ in _CONNECTION_ERROR_NAMES:
        return True
    if isinstance(exc, asyncpg.exceptions.PostgresConnectionError):
        return True
    return _is_connection_os_error(exc)


def route_of(scope: Scope) -> str:
    """The matched route's template (``/api/v1/rounds/{round_id}``): what logs and
    metrics name, since a concrete path can hold a resident's code."""
    # FastAPI keeps an included router's route with its own path ("/tokens") and the
    # full one, prefix included, in its effective route context
    context = scope.get("fastapi", {}).get("effective_route_context")
    path = getattr(context, "path", None) or getattr(scope.get("route"), "path", None)
    return path if isinstance(path, str) else "unmatched"


def _lost_a_race(exc: BaseException) -> bool:
    """A deadlock or serialization failure that escaped a service's own retry."""
    return isinstance(exc, DBAPIError) and getattr(exc.orig, "sqlstate", None) in (
        "40P01",
        "40001",
    )


def unhandled_problem(exc: BaseException, method: str, route: str) -> AppError:
    """The answer to an exception nothing else handled, logged once."""
    if _lost_a_race(exc):
        # a deadlock or serialization failure that escaped a service's own retry
        log.warning("transaction lost a race during %s %s: %s", method, route, type(exc).__name__)
        return DatabaseUnavailable("the database is busy; try again shortly")
    if is_database_unavailable(exc):
        log.warning("database unavailable during %s %s: %s", method, route, type(exc).__name__)
        return DatabaseUnavailable()
    log.error("unhandled error in %s %s", method, route, exc_info=exc)
    return AppError("an unexpected error occurred; it has been logged")


async def _app_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AppError)
    return problem_response(exc)


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"loc": list(err.get("loc", ())), "msg": str(err.get("msg", "")), "type": err.get("type")}
        for err in exc.errors()
    ]
    fields = ", ".join(".".join(str(p) for p in e["loc"]) for e in errors)
    return problem_response(Unprocessable(f"invalid fields: {fields}", errors=errors))


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    slug = {404: "not-found", 405: "method-not-allowed", 413: "payload-too-large"}.get(
        exc.status_code, "http-error"
    )
    error = AppError(str(exc.detail))
    error.status, error.type, error.title = exc.status_code, slug, str(exc.detail)
    error.headers = dict(exc.headers or {})
    return problem_response(error)


async def _pool_timeout(request: Request, exc: Exception) -> JSONResponse:
    """No connection came free in the pool in time: the database is there but busy,
    which a client handles exactly like an outage (wait, send again)."""
    log.warning("no database connection free during %s %s", request.method, route_of(request.scope))
    return problem_response(
        DatabaseUnavailable("no database connection came free in time; try again shortly")
    )


async def _unhandled(request: Request, exc: Exception) -> JSONResponse:
    return problem_response(unhandled_problem(exc, request.method, route_of(request.scope)))


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    # Database and network failures are answered here, inside the app, like any error:
    # the catch-all below answers too but then re-raises (Starlette's last resort),
    # and uvicorn drops the keep-alive connection a client is about to reuse. Other
    # exceptions are answered by screening.observability.RequestLog, so that their 500
    # carries X-Request-ID like every other answer.
    for kind in (
        OSError,
        DBAPIError,
        asyncpg.exceptions.InterfaceError,
        asyncpg.exceptions.PostgresConnectionError,
        asyncpg.exceptions.TooManyConnectionsError,
    ):
        app.add_exception_handler(kind, _unhandled)
    app.add_exception_handler(PoolTimeout, _pool_timeout)
    app.add_exception_handler(Exception, _unhandled)


class UnreadableFile(Unprocessable):
    type, title = "unreadable-file", "The file cannot be read"
