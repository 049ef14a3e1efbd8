"""The service's own CPU per request, without a network or a load generator:

    .venv/bin/python bench/request_cost.py [--requests 3000] [--profile]

Builds the app in this process (its lifespan, middlewares, database pool: the same
``create_app`` that ``screening serve`` runs), seeds a district, a sampling point,
residents and a round through the API, then calls the ASGI app directly, one request
after another, for ``GET /healthz`` and for single scans (``POST .../samples`` with an
``event_id``, ten people a tube, as a station sends them). It prints the process CPU
time per request (the service's side only: PostgreSQL runs in its own processes) and
the wall time per request. With ``--profile``, cProfile's top functions for the scans,
by own time and by cumulative time.

One request at a time on an idle machine: a floor, not a rate under load
(bench/load.py measures that). The figure to compare is scan CPU ÷ healthz CPU.
Needs SCREENING_DATABASE_URL (a fresh database is made in that server) or starts an
embedded PostgreSQL in a temporary folder.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import os
import pstats
import secrets
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import uvloop
from service import database_server  # beside this script

from screening.db import drop_database, ensure_database, make_engine, migrate_engine, with_database

ADMIN = "cost-" + secrets.token_hex(8)
sys.path.insert(0, str(Path(__file__).resolve().parent))


class Asgi:
    """Calls an ASGI app directly: a scope, the body in one message, the answer kept."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def call(
        self, method: str, path: str, body: bytes = b"", token: str | None = None
    ) -> tuple[int, bytes]:
        headers = [(b"host", b"bench"), (b"content-length", str(len(body)).encode())]
        if body:
            headers.append((b"content-type", b"application/json"))
        if token:
            headers.append((b"authorization", b"Bearer " + token.encode()))
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": headers,
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8000),
            "state": {},
        }
        sent = False
        status, chunks = 0, []

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            await asyncio.Event().wait()  # never: the client stays connected
            raise AssertionError

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, send)
        return status, b"".join(chunks)


async def seed(app: Any, residents: int) -> dict[str, Any]:
    import load  # bench/load.py: the same seeding as the load run

    args = argparse.Namespace(residents=residents, points=1, clerks=1, sync_batches=0)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://b/api/v1") as client:
        client.headers["Authorization"] = f"Bearer {ADMIN}"
        load.H["Authorization"] = f"Bearer {ADMIN}"
        world: dict[str, Any] = await load.seed(client, args)
    return world


async def measure(
    app: Any, world: dict[str, Any], n: int, profile: bool, query_nationality: str | None
) -> dict[str, Any]:
    asgi = Asgi(app)
    point = "BP000"
    token, tubes = world["tokens"][point], world["barcodes"][point]
    path = f"/api/v1/rounds/{world['round']}/samples"
    bodies = [
        json.dumps(
            {"tube": tubes[k // 10], "resident_code": code, "event_id": f"cost-{k}"}
        ).encode()
        for k, code in enumerate(world["codes"][: 2 * n])
    ]

    async def run(label: str, calls: list[tuple[str, str, bytes, str | None]]) -> dict[str, float]:
        cpu, wall = time.process_time(), time.perf_counter()
        statuses: dict[int, int] = {}
        for method, p, body, tok in calls:
            status, _ = await asgi.call(method, p, body, tok)
            statuses[status] = statuses.get(status, 0) + 1
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        print(
            f"{label:22} {1000 * cpu / len(calls):6.3f} ms CPU a request,"
            f" {1000 * wall / len(calls):6.3f} ms wall, answers {statuses}"
        )
        return {"cpu_ms": 1000 * cpu / len(calls), "wall_ms": 1000 * wall / len(calls)}

    import load

    people = [line.split(",") for line in load.census(2 * n + 100)[1:]]
    # a query names no nationality unless asked to (--query-nationality): then only one
    # passport candidate is hashed and looked up instead of one per country
    nationality = {"nationality": query_nationality} if query_nationality else {}
    asked = [
        json.dumps({"id_number": p[1], "name": p[2], **nationality}, ensure_ascii=False).encode()
        for p in people[:n]
    ]
    query = [("POST", "/api/v1/results/query", b, None) for b in asked]
    await run("warm-up", [("GET", "/healthz", b"", None)] * 200)
    healthz = await run("GET /healthz", [("GET", "/healthz", b"", None)] * n)
    scans = await run("POST samples", [("POST", path, b, token) for b in bodies[:n]])
    print(f"scan CPU / healthz CPU = {scans['cpu_ms'] / healthz['cpu_ms']:.2f}")
    queries = await run("POST results/query", query)
    print(f"query CPU / healthz CPU = {queries['cpu_ms'] / healthz['cpu_ms']:.2f}")
    if profile:
        profiler = cProfile.Profile()
        profiler.enable()
        await run("POST samples, profiled", [("POST", path, b, token) for b in bodies[n:]])
        await run("POST results/query, profiled", query)
        profiler.disable()
        for order in ("tottime", "cumulative"):
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats(order).print_stats(30)
            print(out.getvalue().split("\n", 6)[-1][:6000])
    return {"healthz": healthz, "scan": scans}


async def main_async(args: argparse.Namespace, url: str) -> None:
    name = f"screening_cost_{secrets.token_hex(3)}"
    await ensure_database(url, name)
    db_url = with_database(url, name)
    os.environ["SCREENING_DATABASE_URL"] = db_url
    os.environ["SCREENING_ADMIN_TOKEN"] = ADMIN
    from screening.app import create_app
    from screening.config import Settings
    from screening.observability import configure_logging

    configure_logging(stream=io.StringIO())  # the access lines are written, then dropped
    settings = Settings()
    engine = make_engine(db_url, settings)
    await migrate_engine(engine)
    await engine.dispose()
    app = create_app(settings)
    try:
        async with app.router.lifespan_context(app):
            world = await seed(app, 2 * args.requests + 100)
            await measure(app, world, args.requests, args.profile, args.query_nationality)
    finally:
        await drop_database(url, name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--query-nationality", help="e.g. CHN: the queries name one")
    args = parser.parse_args()
    with database_server("screening-cost-") as (url, folder):
        os.environ["SCREENING_DATA_DIR"] = str(folder)
        uvloop.run(main_async(args, url))  # the loop uvicorn runs the service on


if __name__ == "__main__":
    main()
