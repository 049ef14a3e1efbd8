"""Prometheus metrics (``GET /metrics``), right across worker processes.

``screening serve`` points ``PROMETHEUS_MULTIPROC_DIR`` at a fresh folder before any
worker starts; each worker then keeps its figures in files there and a scrape, served
by whichever worker, adds them up (prometheus-client's multiprocess mode). Without the
variable (tests, a bare uvicorn) the process's own registry is served.

Labels are route templates, methods, status codes and outcomes: never a path, a code or
anything else a person could be found by.
"""

from __future__ import annotations

import os
import re
import weakref
from pathlib import Path
from typing import Any

import psutil
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = CONTENT_TYPE_LATEST
SCAN_ROUTE = "/api/v1/rounds/{round_id}/samples"

REQUESTS = Counter(
    "screening_http_requests",
    "HTTP requests answered, by method, route template and status",
    ["method", "route", "status"],
)
LATENCY = Histogram(
    "screening_http_request_duration_seconds",
    "Time to answer a request (streams: until they end), by method and route template",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
DB_POOL_IN_USE = Gauge(
    "screening_db_pool_connections_in_use",
    "Database connections checked out of the pools, all processes together",
    multiprocess_mode="livesum",
)
SCANS = Counter("screening_scans", "Scans acknowledged (POST .../samples answered 201)")
SYNC_EVENTS = Counter(
    "screening_sync_events",
    "Offline events received through /sync, by outcome",
    ["outcome"],
)
INGESTED_ROWS = Counter(
    "screening_ingested_rows", "Lab result rows accepted from uploads (new versions)"
)
OPEN_CASES = Gauge(
    "screening_open_retest_cases",
    "De-pool cases open now (read from the database at each scrape)",
    multiprocess_mode="mostrecent",
)
FEED_LISTENERS = Gauge(
    "screening_feed_listeners",
    "Live feed (GET /events) streams open, all processes together",
    multiprocess_mode="livesum",
)


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    REQUESTS.labels(method, route, str(status)).inc()
    LATENCY.labels(method, route).observe(seconds)
    if status == 201 and route == SCAN_ROUTE:
        SCANS.inc()


def count_sync(applied: int, duplicates: int, rejected: int) -> None:
    for outcome, n in (("applied", applied), ("duplicate", duplicates), ("rejected", rejected)):
        if n:
            SYNC_EVENTS.labels(outcome).inc(n)


_instrumented: weakref.WeakSet[Any] = weakref.WeakSet()


def instrument_pool(engine: AsyncEngine) -> None:
    """Follow ``engine``'s pool checkouts in :data:`DB_POOL_IN_USE` (once per pool)."""
    pool = engine.sync_engine.pool
    if pool in _instrumented:
        return
    _instrumented.add(pool)
    event.listen(pool, "checkout", lambda *_: DB_POOL_IN_USE.inc())
    event.listen(pool, "checkin", lambda *_: DB_POOL_IN_USE.dec())


_PID_IN_NAME = re.compile(r"_(\d+)\.db$")


def _forget_dead_processes(folder: Path) -> None:
    """A worker that died (and was replaced) leaves its live gauges behind; drop them
    so that "in use" and "listeners" count living processes only."""
    for path in folder.glob("gauge_live*.db"):
        found = _PID_IN_NAME.search(path.name)
        pid = int(found.group(1)) if found else None
        if pid is not None and not psutil.pid_exists(pid):
            multiprocess.mark_process_dead(pid, str(folder))  # type: ignore[no-untyped-call]


def render() -> bytes:
    """The text exposition of every process's metrics."""
    folder = os.environ.get(MULTIPROC_ENV)
    if not folder:
        return generate_latest(REGISTRY)
    _forget_dead_processes(Path(folder))
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=folder)  # type: ignore[no-untyped-call]
    return generate_latest(registry)
