"""The resident's own query: POST /results/query (no token)."""

from __future__ import annotations

import httpx


async def query(client: httpx.AsyncClient, id_number: str, name: str) -> httpx.Response:
    return await client.post("/results/query", json={"id_number": id_number, "name": name})


class TestQuery:
    async def test_a_sampled_person_reads_pending_until_results_exist(self, scene):
        await scene.fill(scene.barcodes["P1"][0], range(2))
        r = await query(scene.client, scene.ids[1], scene.names[1])
        assert r.status_code == 200
        [item] = r.json()["items"]
        assert item["status"] == "pending"
        assert item["kind"] == "pool"
        assert item["round"] == "第1轮"

    async def test_rounds_come_newest_first(self, scene):
        await scene.fill(scene.barcodes["P1"][0], range(1))
        newer = await scene.ok(
            "/rounds",
            {
                "name": "第2轮",
                "pool_size": 10,
                "districts": ["D1"],
                "starts_at": "2026-11-24T06:00:00+08:00",
                "deadline": "2026-11-25T06:00:00+08:00",
            },
        )
        issued = await scene.ok(
            f"/rounds/{newer['id']}/barcodes", {"sampling_point": "P1", "count": 1}
        )
        await scene.post(
            f"/rounds/{newer['id']}/samples",
            {"tube": issued["first"], "resident_code": scene.codes[0]},
            "P1",
        )
        items = (await query(scene.client, scene.ids[0], scene.names[0])).json()["items"]
        assert [i["round"] for i in items] == ["第2轮", "第1轮"]

    async def test_a_registered_person_never_sampled_has_no_items(self, scene):
        r = await query(scene.client, scene.ids[5], scene.names[5])
        assert r.json() == {"items": []}

    async def test_spaces_and_a_lower_case_x_do_not_matter(self, scene):
        await scene.fill(scene.barcodes["P1"][0], range(1))
        spaced = scene.ids[0][:6] + " " + scene.ids[0][6:].lower()
        r = await query(scene.client, spaced, f" {scene.names[0]} ")
        assert r.status_code == 200


class TestNoOracle:
    async def test_an_unknown_person_and_a_wrong_name_answer_the_same(self, scene):
        unknown = await query(scene.client, "11010519491231002X", "王小明")
        wrong_name = await query(scene.client, scene.ids[0], "李四")
        assert unknown.status_code == wrong_name.status_code == 404
        assert unknown.json() == wrong_name.json()
        assert unknown.json()["type"] == "not-found"

    async def test_too_many_failures_from_one_client_are_refused_with_retry_after(self, scene):
        for _ in range(10):
            r = await query(scene.client, "11010519491231002X", "王小明")
            assert r.status_code == 404
        blocked = await query(scene.client, scene.ids[0], scene.names[0])
        assert blocked.status_code == 429
        assert blocked.json()["type"] == "too-many-requests"
        assert 1 <= int(blocked.headers["Retry-After"]) <= 60

    async def test_the_query_needs_no_token(self, scene):
        r = await scene.client.post(
            "/results/query", json={"id_number": scene.ids[0], "name": scene.names[0]}
        )
        assert r.status_code == 200
