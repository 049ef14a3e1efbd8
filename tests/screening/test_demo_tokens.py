"""A restarted demo prints working tokens for every role, not only the admin's: the
first run's tokens cannot be shown again (only their hashes are kept)."""

from __future__ import annotations

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from screening.demo_round import DISTRICT, LABS, fresh_demo_tokens


async def test_fresh_demo_tokens_open_each_role_s_own_door(
    committed_client: httpx.AsyncClient, engine: AsyncEngine, admin: dict[str, str]
) -> None:
    c = committed_client
    r = await c.post(
        "/districts", headers=admin, json={"code": DISTRICT, "name": "示范区", "population": 100}
    )
    assert r.status_code == 201, r.text
    for k in (1, 2):
        body = {
            "code": f"PT{k:03d}",
            "name": f"第{k}采样点",
            "district": DISTRICT,
            "stations": 2,
            "people_per_hour_per_station": 60,
        }
        assert (await c.post("/sampling-points", headers=admin, json=body)).status_code == 201
    for code, name in LABS:
        body = {"code": code, "name": name, "daily_capacity_tubes": 1000}
        assert (await c.post("/labs", headers=admin, json=body)).status_code == 201

    tokens = await fresh_demo_tokens(engine)

    assert set(tokens) == {"admin", "LAB-A", "LAB-B", "PT001", "PT002"}
    assert len(set(tokens.values())) == len(tokens)

    def bearer(who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {tokens[who]}"}

    assert (await c.get("/rounds", headers=bearer("admin"))).status_code == 200
    # a lab token is a lab's: it may not create rounds; a sampler's likewise
    for who in ("LAB-A", "PT001"):
        r = await c.post(
            "/districts", headers=bearer(who), json={"code": "X", "name": "x", "population": 1}
        )
        assert r.status_code == 403, (who, r.text)
    box = await c.post("/boxes/NOPE/receive", headers=bearer("LAB-B"), json={})
    assert box.status_code == 404, box.text
