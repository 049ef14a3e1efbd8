"""create_app(): wires every package's router, the error handlers and the database."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

import anyio
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
from screening.limits import BodySizeLimit, HeavyWork, StorableUrl
from screening.metrics import instrument_pool
from screening.observability import configure_logging, install_observability
from screening.observability import router as operations_router
from screening.privacy import Vault, load_vault
from screening.progress.router import router as progress_router
from screening.reference.router import router as reference_router
from screening.residents.fast import install as install_query_fast_path
from screening.residents.lists_router import router as resident_lists_router
from screening.residents.ratelimit import make_failure_limiter
from screening.residents.router import router as residents_router
from screening.residents.service import backfill_passport_numbers
from screening.results.router import router as results_router
from screening.retests.feed import EventHub
from screening.retests.router import router as retests_router
from screening.retests.sweeper import run_sweeper
from screening.rounds.router import router as rounds_router
from screening.sampling.fast import install as install_scan_fast_path
from screening.sampling.router import router as sampling_router
from screening.tokens.router import router as tokens_router
from screening.tokens.service import TokenCache, watch_revocations
from screening.transport.router import router as transport_router
from screening.web.router import STATIC
from screening.web.router import router as web_router

API_PREFIX = "/api/v1"
log = logging.getLogger(__name__)

YOUNG_GC_THRESHOLD = 20_000
"""Objects allocated (net of those freed) before the collector looks at the youngest
generation; Python's default is 700. The objects of the requests in flight (32
clerks' scans) passed 700 about 80 times a second: each time they moved to an older
generation, died there, and set off a full collection every second or two, a stall of
5-14 ms of every request in flight, and 30-37 ms of a core a second in all. At 20,000
a steady scan load set off no collection at all (bench/README.md, "Stop 14", the
garbage collector under load); cyclic garbage is still collected after 20,000 objects."""


@contextmanager
def settled_collector() -> Iterator[None]:
    """While the service runs: everything built at start-up (modules, routes, schemas,
    the pool) frozen out of the collector's sight, so a full collection does not walk
    it, and the youngest generation collected at ``YOUNG_GC_THRESHOLD``; the previous
    thresholds come back when it stops (tests start many apps in one process)."""
    before = gc.get_threshold()
    gc.collect()  # the garbage of start-up is freed, not frozen for ever
    gc.freeze()
    gc.set_threshold(YOUNG_GC_THRESHOLD, *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)


async def _hash_passports(engine: AsyncEngine, vault: Vault) -> bool:
    """Fill in the look-up hash of passports stored before migration 0012; False when
    the database could not be reached (the service starts anyway)."""
    try:
        filled = await backfill_passport_numbers(engine, vault)
    except Exception as exc:  # only the type: a statement's error can quote its values
        log.warning("passport numbers not hashed yet (%s); trying again", type(exc).__name__)
        return False
    if filled:
        log.info("passport numbers hashed for look-up", extra={"residents": filled})
    return True


async def _hash_passports_until_done(engine: AsyncEngine, vault: Vault) -> None:
    while True:
        await anyio.sleep(5)
        if await _hash_passports(engine, vault):
            return


def _bind_engine(app: FastAPI, engine: AsyncEngine) -> None:
    settings: Settings = app.state.settings
    app.state.engine = engine
    app.state.sessionmaker = make_sessionmaker(engine)
    app.state.event_hub = EventHub(engine, settings.events_poll_seconds)
    app.state.query_limiter = make_failure_limiter(
        settings.rate_limit_storage, engine, settings.query_failures_per_minute
    )
    instrument_pool(engine)


def create_app(settings: Settings | None = None, engine: AsyncEngine | None = None) -> FastAPI:
    """The ASGI app. Without ``engine`` it connects on start-up (embedded PostgreSQL
    when no URL is configured); migrations are run by ``screening serve``, not here."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own_engine = engine is None
        db = engine or make_engine(await resolve_database_url(settings), settings)
        _bind_engine(app, db)
        try:
            hashed = await _hash_passports(db, app.state.vault)
            # per process: the token revocation check; among all processes: one
            # overdue sweeper (the live feed's poller starts with its first listener)
            async with anyio.create_task_group() as background:
                if not hashed:
                    background.start_soon(_hash_passports_until_done, db, app.state.vault)
                background.start_soon(watch_revocations, db, app.state.token_cache)
                background.start_soon(run_sweeper, db, settings)
                background.start_soon(run_feed_worker, app.state.sessionmaker, settings)
                with settled_collector():
                    yield
                background.cancel_scope.cancel()
            await app.state.event_hub.close()
        finally:
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
    # engines connect lazily: the replica is only dialled by the first read routed to it
    replica = (
        Replica(settings.database_replica_url, settings) if settings.database_replica_url else None
    )
    app.state.replica = replica
    app.state.heavy_work = HeavyWork(settings.heavy_work_slots, settings.heavy_work_wait_seconds)
    if replica is not None:
        instrument_pool(replica.engine)
    if engine is not None:
        _bind_engine(app, engine)
    install_error_handlers(app)
    for router in (
        tokens_router,
        reference_router,
        residents_router,
        resident_lists_router,
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
    app.include_router(operations_router)
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

    install_scan_fast_path(app)  # innermost: every middleware below wraps them too
    install_query_fast_path(app)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(StorableUrl)
    install_observability(app)
    return app


def served_app() -> FastAPI:
    """What ``screening serve`` runs in each worker process: JSON logs, then the app
    (settings from the environment the command prepared)."""
    configure_logging()
    return create_app()
