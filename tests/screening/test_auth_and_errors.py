"""Tokens, roles and the problem documents every error comes as."""

from __future__ import annotations

import pytest


class TestTokens:
    async def test_no_token_is_unauthenticated(self, scene):
        r = await scene.client.post(
            f"/rounds/{scene.round_id}/samples",
            json={"tube": scene.barcodes["P1"][0], "resident_code": scene.codes[0]},
        )
        assert (r.status_code, r.json()["type"]) == (401, "unauthenticated")
        assert r.headers["content-type"] == "application/problem+json"

    async def test_an_unknown_token_is_unauthenticated(self, scene):
        r = await scene.client.get("/rounds", headers={"Authorization": "Bearer nope"})
        assert (r.status_code, r.json()["type"]) == (401, "unauthenticated")

    async def test_a_lab_token_cannot_take_samples(self, scene):
        r = await scene.sample(scene.barcodes["P1"][0], scene.codes[0], who="L1")
        assert (r.status_code, r.json()["type"]) == (403, "forbidden")

    async def test_a_sampler_of_another_point_cannot_use_a_tube(self, scene):
        tube = scene.barcodes["P1"][0]
        await scene.fill(tube, range(1))
        assert (await scene.sample(tube, scene.codes[1], who="P2")).status_code == 403
        assert (
            await scene.client.get(
                f"/rounds/{scene.round_id}/tubes/{tube}", headers=scene.tokens["P2"]
            )
        ).status_code == 403
        assert (
            await scene.post(f"/rounds/{scene.round_id}/tubes/{tube}/seal", None, "P2")
        ).status_code == 403

    async def test_a_sampler_cannot_scan_an_unused_tube_of_another_point(self, scene):
        r = await scene.sample(scene.barcodes["P1"][0], scene.codes[0], who="P2")
        assert r.status_code == 403

    async def test_only_the_admin_issues_tokens(self, scene):
        r = await scene.post("/tokens", {"role": "admin"}, who="P1")
        assert r.status_code == 403

    async def test_a_sampler_token_must_name_a_known_point(self, scene):
        assert (await scene.post("/tokens", {"role": "sampler"})).status_code == 422
        assert (
            await scene.post("/tokens", {"role": "sampler", "sampling_point": "NOPE"})
        ).status_code == 404

    async def test_tokens_are_stored_hashed(self, scene, db_session):
        from sqlalchemy import text

        token = (await scene.ok("/tokens", {"role": "lab", "lab": "L1"}))["token"]
        stored = (await db_session.execute(text("SELECT token_hash FROM api_tokens"))).scalars()
        assert token not in list(stored)


class TestReferenceData:
    async def test_a_duplicate_district_is_a_conflict(self, scene):
        r = await scene.post("/districts", {"code": "D1", "name": "again", "population": 1})
        assert (r.status_code, r.json()["type"]) == (409, "duplicate")

    async def test_a_lab_gets_the_default_kit(self, scene):
        labs = (await scene.client.get("/labs", headers=scene.tokens["admin"])).json()["items"]
        assert labs[0]["kit"]["positive_ct_max"] == 40.0
        assert labs[0]["kit"]["dyes"]["FAM"] == "ORF1ab"


class TestProblems:
    async def test_an_unknown_path_is_a_not_found_problem(self, client):
        r = await client.get("/nowhere")
        assert (r.status_code, r.json()["type"]) == (404, "not-found")

    async def test_malformed_json_is_an_invalid_request(self, scene):
        r = await scene.client.post(
            "/districts",
            content=b"{nope",
            headers={**scene.tokens["admin"], "content-type": "application/json"},
        )
        assert (r.status_code, r.json()["type"]) == (422, "invalid-request")

    @pytest.mark.parametrize("size", [10_000])
    async def test_a_body_above_the_limit_is_refused_before_it_is_read(
        self, settings, engine, size
    ):
        import httpx

        from screening.app import create_app

        app = create_app(settings.model_copy(update={"max_body_bytes": 1000}), engine=engine)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t/api/v1") as c:
            r = await c.post(
                "/results/query", content=b"x" * size, headers={"content-type": "application/json"}
            )
            assert (r.status_code, r.json()["type"]) == (413, "payload-too-large")

            async def chunks():
                for _ in range(size // 100):
                    yield b"x" * 100

            r = await c.post(
                "/results/query", content=chunks(), headers={"content-type": "application/json"}
            )
            assert (r.status_code, r.json()["type"]) == (413, "payload-too-large")


class TestTextThatCannotBeStored:
    """PostgreSQL text holds no NUL: such input is a 422 naming where, never a 500."""

    async def test_a_nul_in_a_body_field_is_an_invalid_request(self, scene):
        r = await scene.post("/labs", {"code": "LX", "name": "a\x00b", "daily_capacity_tubes": 1})
        assert (r.status_code, r.json()["type"]) == (422, "invalid-request")
        assert r.json()["errors"][0]["loc"] == ["body", "name"]
        r = await scene.post(
            "/labs",
            {"code": "LX", "name": "x", "daily_capacity_tubes": 1, "kit": {"dyes": {"F\x00": "N"}}},
        )
        assert r.status_code == 422

    async def test_a_nul_in_the_path_or_query_is_an_invalid_request(self, scene):
        admin = scene.tokens["admin"]
        for url in (
            f"/rounds/{scene.round_id}/tubes/%00/seal",
            "/boxes/BOX%00",
            "/labs/L%001/uploads/1",
            f"/rounds/{scene.round_id}/progress?points_after=%00",
        ):
            method = "POST" if url.endswith("seal") else "GET"
            r = await scene.client.request(method, url, headers=admin)
            assert (r.status_code, r.json()["type"]) == (422, "invalid-request"), url

    async def test_an_id_beyond_its_column_is_an_invalid_request(self, scene):
        for url in ("/rounds/2147483648", "/rounds/1/retests/9223372036854775808"):
            r = await scene.client.get(url, headers=scene.tokens["admin"])
            assert (r.status_code, r.json()["type"]) == (422, "invalid-request"), url
