"""The query's fast path (screening.residents.fast) answers exactly as the route does.

One script of queries (a person with a round, one never sampled, an unknown number, a
wrong name, bodies that do not validate, then misses up to the failure limit and the
refusal after it) runs through an app without the fast path (every query answered
by the FastAPI route) and through the service's own app; both read the same
database, and each app has its own failure counter."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import FastAPI

from screening.app import create_app
from screening.residents.fast import QueryFastPath


def without_fast_path(app: FastAPI, settings: Any, engine: Any) -> FastAPI:
    """The same service answering every query through its route (the middleware stack
    is built at the first request, so leaving it out of the list is enough)."""
    plain = create_app(settings, engine=engine)
    plain.dependency_overrides = dict(app.dependency_overrides)
    plain.user_middleware = [m for m in plain.user_middleware if m.cls is not QueryFastPath]
    return plain


async def script(client: httpx.AsyncClient, scene: Any) -> list[Any]:
    bodies: list[Any] = [
        {"id_number": scene.ids[0], "name": scene.names[0]},
        {"id_number": scene.ids[5], "name": f" {scene.names[5]} "},
        {"id_number": "11010519491231002X", "name": "王小明"},
        {"id_number": scene.ids[0], "name": "李四"},
        {"id_number": "", "name": "王小明"},
        {"id_number": scene.ids[0]},
        {"id_number": scene.ids[0], "name": "王\u0000明"},
        *[{"id_number": "E12345678", "name": "John Smith"}] * 8,
        {"id_number": scene.ids[0], "name": scene.names[0]},  # over the limit
    ]
    answers = []
    for body in bodies:
        r = await client.post("/results/query", json=body)
        answers.append(
            (r.status_code, r.headers["content-type"], r.headers.get("retry-after"), r.json())
        )
    return answers


async def test_the_fast_path_answers_as_the_route(app, scene, settings, engine):
    await scene.fill(scene.barcodes["P1"][0], range(2))
    plain = without_fast_path(app, settings, engine)
    before = QueryFastPath.answered
    transport = httpx.ASGITransport(app=plain, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test/api/v1") as client:
        by_route = await script(client, scene)
    assert QueryFastPath.answered == before

    by_fast_path = await script(scene.client, scene)

    assert by_fast_path == by_route
    statuses = [status for status, *_ in by_route]
    assert statuses == [200, 200, 404, 404, 422, 422, 422, *[404] * 8, 429]
    assert by_route[0][3]["items"][0]["status"] == "pending"
    assert by_route[-1][2] is not None  # Retry-After
    # the fast path answered every query whose body validated, refusals included (the
    # NUL in a name is refused by the service, not the schema)
    assert QueryFastPath.answered - before == 13


async def test_the_query_route_is_named_in_the_metrics_not_the_path(scene):
    await scene.client.post("/results/query", json={"id_number": "E1234567", "name": "x"})
    text = (await scene.client.get("http://test/metrics")).text
    assert 'route="/api/v1/results/query",status="404"' in text
