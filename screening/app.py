"""create_app(): wires every package's router, the error handlers and the database."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

from fastapi import FastAPI, Request
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from screening.config import Settings, get_settings
from screening.db import (
    Replica,
    make_engine,
    make_sessionmaker,
    resolve_database_url,
    stop_embedded_server,
)
from screening.errors import DatabaseUnavailable, install_error_handlers
from screening.feed.router import router as feed_router
from screening.feed.worker import run_feed_worker
from screening.limits import BodySizeLimit, StorableUrl
from screening.privacy import load_vault
from screening.progress.router import router as progress_router
from screening.reference.router import router as reference_router
from screening.residents.ratelimit import FailureLimiter
from screening.residents.router import router as residents_router
from screening.results.router import router as results_router
from screening.retests.router import router as retests_router
from screening.rounds.router import router as rounds_router
from screening.sampling.router import router as sampling_router
from screening.tokens.router import router as tokens_router
from screening.tokens.service import TokenCache
from screening.transport.router import router as transport_router
from screening.web.router import STATIC
from screening.web.router import router as web_router

API_PREFIX = "/api/v1"


def create_app(settings: Settings | None = None, engine: AsyncEngine | None = None) -> FastAPI:
    """The ASGI app. Without ``engine`` it connects on start-up (embedded PostgreSQL
    when no URL is configured); migrations are run by ``screening serve``, not here."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own_engine = engine is None
        db = engine or make_engine(await resolve_database_url(settings), settings)
        app.state.engine = db
        app.state.sessionmaker = make_sessionmaker(db)
        feed = asyncio.create_task(run_feed_worker(app.state.sessionmaker, settings))
        try:
            yield
        finally:
            feed.cancel()
            with suppress(asyncio.CancelledError):
                await feed
            if replica is not None:
                await replica.engine.dispose()
            if own_engine:
                await db.dispose()
                if not settings.database_url:
                    stop_embedded_server()

    # /docs must work at a sampling point or lab without internet: Swagger UI's assets are
    # served from the fastapi-offline package instead of a CDN
    app = FastAPIOffline(
        title="screening",
        version="1",
        summary="City-wide pooled PCR screening: rounds, tubes, results, de-pooling.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.vault = load_vault(settings)
    app.state.token_cache = TokenCache(settings.token_cache_seconds)
    app.state.query_limiter = FailureLimiter(settings.query_failures_per_minute)
    # engines connect lazily: the replica is only dialled by the first read routed to it
    replica = (
        Replica(settings.database_replica_url, settings) if settings.database_replica_url else None
    )
    app.state.replica = replica
    if engine is not None:
        app.state.engine = engine
        app.state.sessionmaker = make_sessionmaker(engine)
    install_error_handlers(app)
    for router in (
        tokens_router,
        reference_router,
        residents_router,
        rounds_router,
        sampling_router,
        transport_router,
        results_router,
        retests_router,
        progress_router,
        feed_router,
    ):
        app.include_router(router, prefix=API_PREFIX)
    app.include_router(web_router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/healthz", tags=["operations"])
    async def healthz(request: Request) -> dict[str, str]:
        """200 once the database answers; 503 database-unavailable otherwise."""
        try:
            async with request.app.state.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except Exception as exc:
            raise DatabaseUnavailable() from exc
        return {"status": "ok"}

    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(StorableUrl)
    return app
