"""The scan's fast path (screening.sampling.fast) answers exactly as the route does.

The same script of scans (taken, full, twice in a tube, another point's tube, a
misread barcode, an unknown person, the other tube kind, an event sent again, an
event_id reused for a seal, a body that does not validate) runs once through the
FastAPI route (the token cache not trusted: every request goes to the route) and once
through the fast path (the cache trusted and warm, as the revocation watch keeps it
in a running service); answers are compared after replacing the barcodes and people
of each run by their role in the script.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from screening.privacy import mask_name
from screening.sampling.fast import ScanFastPath
from screening.tokens.service import TokenCache


def trust_cache(app: Any) -> None:
    """What the revocation watch does every quarter second in a running service."""
    app.state.token_cache.observe(0, time.monotonic())


async def script(scene: Any, tubes: list[str], people: list[int], app: Any) -> list[Any]:
    """Every answer of the script, with this run's barcodes and people named by role."""
    answers: list[httpx.Response] = []

    async def scan(tube: str, person: int, who: str = "P1", **extra: object) -> None:
        trust_cache(app)
        answers.append(await scene.sample(tube, scene.codes[person], who, **extra))

    first, second, single = tubes
    await scan(first, people[0], event_id=f"ev-{first}")  # opens the tube
    await scan(first, people[0], event_id=f"ev-{first}")  # the same event again: as before
    await scan(first, people[0])  # twice in one tube
    await scan(first, people[1], who="P2")  # another point's tube
    misread = first[:-1] + str((int(first[-1]) + 1) % 10)
    await scan(misread, people[1])
    await scan(first, people[1], kind="single")  # the other kind
    for k in range(2, 11):  # fills the tube (ten people), then one too many
        await scan(first, people[k])
    await scan(first, people[11])  # full
    await scan(second, people[11], event_id=f"ev-{first}")  # an event_id used before
    await scan(single, people[12], kind="single")  # a single tube: one person, sealed
    trust_cache(app)
    answers.append(
        await scene.post(
            f"/rounds/{scene.round_id}/samples", {"tube": second, "resident_code": 7}, "P1"
        )
    )
    trust_cache(app)
    answers.append(await scene.post(f"/rounds/{scene.round_id}/samples", {"tube": second}, "P1"))
    masked = {mask_name(scene.names[p]) for p in people}
    assert answers[0].json()["resident"]["name_masked"] == mask_name(scene.names[people[0]])
    roles = {tube: f"tube{k}" for k, tube in enumerate([*tubes, misread])}

    def named(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: named(v) for k, v in value.items()}
        if isinstance(value, list):
            return [named(v) for v in value]
        if isinstance(value, str):
            if value in masked:  # a masked name (checked for the first scan above)
                return "masked"
            for real, role in roles.items():  # barcodes, also inside sentences
                value = value.replace(real, role)
        return value

    return [
        (r.status_code, r.headers["content-type"], named(r.json()) if r.content else None)
        for r in answers
    ]


@pytest.fixture
def cached_app(app: Any) -> Any:
    app.state.token_cache = TokenCache(ttl=60)
    return app


async def test_the_fast_path_answers_as_the_route(scene, cached_app, db_session):
    p1 = scene.barcodes["P1"]
    before = ScanFastPath.answered
    cached_app.state.token_cache = TokenCache(ttl=0)  # nothing cached: all to the route
    by_route = await script(scene, p1[0:3], list(range(0, 13)), cached_app)
    assert ScanFastPath.answered == before

    cached_app.state.token_cache = TokenCache(ttl=60)
    trust_cache(cached_app)
    warm = await scene.client.get(  # the route looks the token up and fills the cache
        f"/rounds/{scene.round_id}/tubes/{p1[5]}", headers=scene.tokens["P1"]
    )
    assert warm.status_code == 200
    for who in ("P2",):
        trust_cache(cached_app)
        await scene.client.get(
            f"/rounds/{scene.round_id}/tubes/{scene.barcodes['P2'][0]}", headers=scene.tokens[who]
        )
    by_fast_path = await script(scene, p1[3:6], list(range(13, 26)), cached_app)

    assert by_fast_path == by_route
    answered = ScanFastPath.answered - before
    assert answered >= 12  # every ordinary scan; bodies that do not validate go to the route
    # what each run wrote is the same too: one sample per taken scan, no stray claims
    rows = await db_session.execute(
        text(
            "SELECT t.barcode, t.count, t.state, count(s.id) AS held,"
            " (SELECT count(*) FROM applied_events e WHERE e.tube_serial = t.serial) AS claims"
            " FROM tubes t LEFT JOIN samples s ON s.tube_serial = t.serial"
            " GROUP BY t.serial ORDER BY t.serial"
        )
    )
    written = {r.barcode: (r.count, r.state, r.held, r.claims) for r in rows}
    for route_tube, fast_tube in zip(p1[0:3], p1[3:6], strict=True):
        assert written.get(route_tube) == written.get(fast_tube)
    assert written[p1[0]] == (10, "sealed", 10, 1)


async def test_a_scan_without_a_cached_token_goes_to_the_route(scene, cached_app):
    before = ScanFastPath.answered
    r = await scene.sample(scene.barcodes["P1"][0], scene.codes[0])  # cache not trusted
    assert r.status_code == 201
    assert ScanFastPath.answered == before
    trust_cache(cached_app)
    r = await scene.client.post(
        f"/rounds/{scene.round_id}/samples",
        json={"tube": scene.barcodes["P1"][0], "resident_code": scene.codes[1]},
        headers={"Authorization": "Bearer not-a-token"},
    )
    assert (r.status_code, r.json()["type"]) == (401, "unauthenticated")
    assert ScanFastPath.answered == before
