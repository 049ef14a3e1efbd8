"""Rounds, plans and barcode ranges through the API."""

from __future__ import annotations

import io

from pypdf import PdfReader

from pooling.barcodes import parse_barcode


class TestRounds:
    async def test_a_round_keeps_its_pool_size_and_district_overrides(self, scene):
        r = await scene.client.get(f"/rounds/{scene.round_id}", headers=scene.tokens["admin"])
        body = r.json()
        assert (body["pool_size"], body["status"]) == (10, "open")
        assert body["districts"] == ["D1", "D2"]
        assert body["pool_size_by_district"] == {"D2": 20}

    async def test_a_pool_size_outside_the_rules_is_refused(self, scene):
        r = await scene.post(
            "/rounds",
            {
                "name": "x",
                "pool_size": 7,
                "districts": ["D1"],
                "starts_at": "2026-11-22T06:00:00+08:00",
                "deadline": "2026-11-23T06:00:00+08:00",
            },
        )
        assert (r.status_code, r.json()["type"]) == (422, "invalid-request")
        assert r.json()["errors"][0]["loc"] == ["body", "pool_size"]

    async def test_a_deadline_before_the_start_is_refused(self, scene):
        r = await scene.post(
            "/rounds",
            {
                "name": "x",
                "pool_size": 10,
                "districts": ["D1"],
                "starts_at": "2026-11-23T06:00:00+08:00",
                "deadline": "2026-11-22T06:00:00+08:00",
            },
        )
        assert r.status_code == 422

    async def test_an_unknown_district_is_not_found(self, scene):
        r = await scene.post(
            "/rounds",
            {
                "name": "x",
                "pool_size": 10,
                "districts": ["ZZ"],
                "starts_at": "2026-11-22T06:00:00+08:00",
                "deadline": "2026-11-23T06:00:00+08:00",
            },
        )
        assert (r.status_code, r.json()["type"]) == (404, "not-found")

    async def test_rounds_are_listed_with_a_cursor(self, scene):
        for n in range(2):
            await scene.ok(
                "/rounds",
                {
                    "name": f"r{n}",
                    "pool_size": 10,
                    "districts": ["D1"],
                    "starts_at": "2026-11-22T06:00:00+08:00",
                    "deadline": "2026-11-23T06:00:00+08:00",
                },
            )
        first = (await scene.client.get("/rounds?limit=2", headers=scene.tokens["admin"])).json()
        assert len(first["items"]) == 2 and first["next_cursor"]
        rest = (
            await scene.client.get(
                f"/rounds?limit=2&cursor={first['next_cursor']}", headers=scene.tokens["admin"]
            )
        ).json()
        assert [r["name"] for r in rest["items"]] == ["r1"]
        assert rest["next_cursor"] is None


class TestPlan:
    async def test_the_plan_sizes_each_district(self, scene):
        r = await scene.client.get(f"/rounds/{scene.round_id}/plan", headers=scene.tokens["admin"])
        assert r.status_code == 200, r.text
        plan = r.json()
        d1 = next(d for d in plan["districts"] if d["district"] == "D1")
        assert d1["population"] == 3000
        assert (d1["sampling_points"], d1["stations"], d1["hourly_capacity"]) == (2, 4, 240.0)
        assert d1["hours_needed"] == 12.5
        assert d1["tubes_needed"] == 300
        assert d1["samplers_needed"] == 9
        assert d1["feasible"] is False and d1["bottleneck"] == "stations"
        assert sum(share["tubes"] for share in d1["lab_allocation"]) == 300
        d2 = next(d for d in plan["districts"] if d["district"] == "D2")
        assert (d2["pool_size"], d2["tubes_needed"]) == (20, 100)

    async def test_the_plan_is_for_the_command_center_only(self, scene):
        r = await scene.client.get(f"/rounds/{scene.round_id}/plan", headers=scene.tokens["P1"])
        assert r.status_code == 403


class TestBarcodeRanges:
    async def test_ranges_are_consecutive_and_never_overlap(self, scene):
        serials = [
            parse_barcode(code) for point in ("P1", "P2", "Q1") for code in scene.barcodes[point]
        ]
        assert len(serials) == len(set(serials)) == 60
        assert serials == sorted(serials)

    async def test_a_range_lists_its_barcodes(self, scene):
        issued = await scene.ok(
            f"/rounds/{scene.round_id}/barcodes", {"sampling_point": "P1", "count": 5}
        )
        assert issued["count"] == 5
        listing = (
            await scene.client.get(
                f"/rounds/{scene.round_id}/barcodes/{issued['range_id']}",
                headers=scene.tokens["admin"],
            )
        ).json()
        assert listing["barcodes"][0] == issued["first"]
        assert listing["barcodes"][-1] == issued["last"]
        assert listing["sampling_point"] == "P1"

    async def test_the_label_sheet_is_a_pdf_with_every_code_readable(self, scene):
        issued = await scene.ok(
            f"/rounds/{scene.round_id}/barcodes", {"sampling_point": "P1", "count": 12}
        )
        r = await scene.client.get(
            f"/rounds/{scene.round_id}/barcodes/{issued['range_id']}/labels.pdf",
            headers=scene.tokens["admin"],
        )
        assert r.status_code == 200
        assert r.headers["content-type"] == "application/pdf"
        extracted = "".join(page.extract_text() for page in PdfReader(io.BytesIO(r.content)).pages)
        listing = (
            await scene.client.get(
                f"/rounds/{scene.round_id}/barcodes/{issued['range_id']}",
                headers=scene.tokens["admin"],
            )
        ).json()
        for code in listing["barcodes"]:
            assert code in extracted

    async def test_an_unknown_sampling_point_is_not_found(self, scene):
        r = await scene.post(
            f"/rounds/{scene.round_id}/barcodes", {"sampling_point": "NOPE", "count": 5}
        )
        assert r.status_code == 404

    async def test_a_closed_round_issues_no_barcodes(self, scene):
        await scene.post(f"/rounds/{scene.round_id}/close", None)
        r = await scene.post(
            f"/rounds/{scene.round_id}/barcodes", {"sampling_point": "P1", "count": 5}
        )
        assert (r.status_code, r.json()["type"]) == (409, "round-closed")
