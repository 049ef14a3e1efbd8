"""GET /rounds/{id}/progress: figures from counters the triggers keep, checked against
the rows themselves after every kind of state change."""

from __future__ import annotations

import asyncio
import io

from pypdf import PdfReader
from sqlalchemy import text

POSITIVE, NEGATIVE, INVALID = "30.1,31.2,26", ",,26", ",,"


async def progress(scene, who="admin"):
    r = await scene.client.get(f"/rounds/{scene.round_id}/progress", headers=scene.tokens[who])
    assert r.status_code == 200, r.text
    return r.json()


async def truth(session, round_id):
    """The same figures counted the slow way, from tubes and samples: a person counts
    once, at the point of their first sample of the round."""
    q = text("""
        SELECT p.code,
               (SELECT count(*) FROM (
                    SELECT DISTINCT ON (s.resident_id) t.sampling_point_id
                    FROM samples s JOIN tubes t ON t.serial = s.tube_serial
                    WHERE s.round_id = :r ORDER BY s.resident_id, s.id) f
                WHERE f.sampling_point_id = p.id) AS registered,
               (SELECT count(*) FROM samples s JOIN tubes t ON t.serial = s.tube_serial
                WHERE t.sampling_point_id = p.id AND t.round_id = :r) AS samples,
               count(t.*) FILTER (WHERE t.state = 'open') AS open,
               count(t.*) FILTER (WHERE t.state = 'sealed') AS sealed,
               count(t.*) FILTER (WHERE t.state = 'packed') AS packed,
               count(t.*) FILTER (WHERE t.state = 'in_transit') AS in_transit,
               count(t.*) FILTER (WHERE t.state = 'received') AS received,
               count(t.*) FILTER (WHERE t.state = 'resulted') AS tested,
               count(t.*) FILTER (WHERE t.result_call = 'negative') AS negative,
               count(t.*) FILTER (WHERE t.result_call = 'positive') AS positive,
               count(t.*) FILTER (WHERE t.result_call = 'suspicious') AS suspicious,
               count(t.*) FILTER (WHERE t.result_call = 'invalid') AS invalid,
               count(t.*) FILTER (WHERE t.kind = 'single'
                                  AND t.result_call IN ('positive', 'suspicious')) AS confirmed,
               count(t.*) FILTER (WHERE t.kind = 'pool' AND t.capacity > 1
                                  AND t.result_call = 'positive') AS pool_positive,
               count(t.*) FILTER (WHERE t.kind = 'pool' AND t.capacity > 1
                                  AND t.result_call = 'suspicious') AS pool_suspicious
        FROM sampling_points p LEFT JOIN tubes t ON t.sampling_point_id = p.id
                                                AND t.round_id = :r
        GROUP BY p.id, p.code ORDER BY p.code
    """)
    return {row.code: row._mapping for row in (await session.execute(q, {"r": round_id})).all()}


def as_truth(point):
    return {
        "registered": point["registered"],
        "samples": point["samples"],
        **point["tubes"],
        **point["results"],
        "confirmed": point["confirmed_positive"],
        "pool_positive": point["pools"]["positive"],
        "pool_suspicious": point["pools"]["suspicious"],
    }


async def assert_counters_hold(scene, session):
    got = {p["sampling_point"]: as_truth(p) for p in (await progress(scene))["sampling_points"]}
    expected = await truth(session, scene.round_id)
    for code, row in expected.items():
        want = {k: v for k, v in row.items() if k != "code"}
        assert got.get(code, dict.fromkeys(want, 0)) == want, code


class TestProgress:
    async def test_every_state_change_moves_the_counters(self, scene, db_session):
        p1, q1 = scene.barcodes["P1"], scene.barcodes["Q1"]
        await scene.fill(p1[0], [0, 1, 2])
        await scene.fill(p1[1], [3, 4])
        await scene.fill(q1[0], [5, 6, 7], who="Q1")
        await assert_counters_hold(scene, db_session)
        await scene.ship([p1[0], p1[1]], box="B1")
        await scene.post(f"/rounds/{scene.round_id}/tubes/{q1[0]}/seal", None, "Q1")
        await assert_counters_hold(scene, db_session)
        await scene.upload_lis([f"A3,{p1[0]},{POSITIVE}", f"A4,{p1[1]},{NEGATIVE}"], "PL1")
        await assert_counters_hold(scene, db_session)
        await scene.upload_lis([f"A3,{p1[1]},{INVALID}"], "PL1-AGAIN")  # a new version
        single = p1[5]
        await scene.fill(single, [0], kind="single")
        await scene.ship([single], box="B2")
        await scene.upload_lis([f"A3,{single},{POSITIVE}"], "PL2")
        await assert_counters_hold(scene, db_session)

        body = await progress(scene)
        assert (body["registered"], body["samples"]) == (8, 9)  # person 0 re-tested alone
        assert body["population"] == 5000
        assert body["tubes"] == {
            "open": 0,
            "sealed": 1,
            "packed": 0,
            "in_transit": 0,
            "received": 0,
            "tested": 3,
        }
        assert body["results"] == {"negative": 0, "positive": 2, "suspicious": 0, "invalid": 1}
        assert body["pools"] == {"positive": 1, "suspicious": 0}
        assert body["singles"] == {"positive": 1, "suspicious": 0}
        assert body["confirmed_positive"] == 1
        assert body["retests"]["open"] == 1
        d1, d2 = body["districts"]
        assert (d1["district"], d1["registered"], d1["samples"]) == ("D1", 5, 6)
        assert d1["coverage"] == 0.0017
        assert (d2["district"], d2["registered"]) == ("D2", 3)
        [lab] = body["labs"]
        assert (lab["lab"], lab["tubes"]["tested"], lab["load"]) == ("L1", 3, 0.000015)
        # sealed and resulted within the test: the first 5-minute bucket, read as its end
        assert lab["turnaround_hours"] == {"p50": 0.08, "p95": 0.08}
        assert body["turnaround_hours"] == {"p50": 0.08, "p95": 0.08}

    async def test_a_tube_update_is_kept_whatever_it_moves_and_a_count_alone_writes_nothing(
        self, scene, db_session
    ):
        """One trigger keeps the counters and the feed marks on a tube's update
        (migration 0013) and leaves at once when the update moved nothing they keep: a
        scan counting a swab into an open tube. Each kept column moved alone still
        counts."""
        tube = scene.barcodes["P1"][0]
        await scene.fill(tube, [0, 1])
        lab = await db_session.scalar(text("SELECT id FROM labs WHERE code = 'L1'"))

        async def update(change: str) -> None:
            await db_session.execute(
                text(f"UPDATE tubes SET {change} WHERE barcode = :b"), {"b": tube, "lab": lab}
            )

        async def kept() -> tuple[int, list[object]]:
            marks = await db_session.scalar(
                text(
                    "SELECT count(*) FROM feed_marks f JOIN tubes t ON t.serial = f.tube_serial"
                    " WHERE t.barcode = :b"
                ),
                {"b": tube},
            )
            counts = await db_session.execute(
                text("SELECT * FROM progress_counts ORDER BY round_id, sampling_point_id, lab_id")
            )
            return marks, [tuple(row) for row in counts]

        before = await kept()
        await update("count = count")
        assert await kept() == before
        await update("lab_id = :lab")  # only the lab: the open tube moves to its lab's row
        marks, counts = await kept()
        assert marks == before[0]
        assert counts != before[1]
        open_at_lab = await db_session.scalar(
            text("SELECT open FROM progress_counts WHERE lab_id = :lab"), {"lab": lab}
        )
        assert open_at_lab == 1
        await update("result_version = 1")  # only the version: a mark for the feed
        assert (await kept())[0] == before[0] + 1
        await update("result_call = 'negative'")  # only the call
        await assert_counters_hold(scene, db_session)
        await update("state = 'sealed'")  # only the state
        await assert_counters_hold(scene, db_session)
        assert (await kept())[0] == before[0] + 3

    async def test_late_boxes_are_counted_where_they_come_from_and_go(self, scene, db_session):
        tube = scene.barcodes["P1"][0]
        await scene.fill(tube, [0])
        await scene.post(f"/rounds/{scene.round_id}/tubes/{tube}/seal", None, "P1")
        await scene.ok("/boxes", {"barcode": "LATE", "lab": "L2", "tubes": [tube]}, "P1")
        await scene.ok("/boxes/LATE/dispatch", {}, "P1")
        assert (await progress(scene))["boxes_late"] == 0
        await db_session.execute(
            text("UPDATE boxes SET dispatched_at = now() - interval '3 hours'")
        )
        body = await progress(scene)
        assert body["boxes_late"] == 1
        assert [(p["sampling_point"], p["boxes_late"]) for p in body["sampling_points"]] == [
            ("P1", 1),
            ("P2", 0),  # idle points are listed too: the command center wants to see them
            ("Q1", 0),
        ]
        assert body["districts"][0]["boxes_late"] == 1
        assert body["tubes"]["in_transit"] == 1

    async def test_sampling_points_come_a_page_at_a_time(self, scene):
        await scene.fill(scene.barcodes["P2"][0], [0, 1], who="P2")
        url = f"/rounds/{scene.round_id}/progress"
        first = (
            await scene.client.get(url, params={"points_limit": 2}, headers=scene.tokens["admin"])
        ).json()
        assert [p["sampling_point"] for p in first["sampling_points"]] == ["P1", "P2"]
        assert first["sampling_points"][1]["registered"] == 2
        assert (first["sampling_points_total"], first["sampling_points_next"]) == (3, "P2")
        rest = (
            await scene.client.get(
                url,
                params={"points_limit": 2, "points_after": "P2"},
                headers=scene.tokens["admin"],
            )
        ).json()
        assert [p["sampling_point"] for p in rest["sampling_points"]] == ["Q1"]
        assert rest["sampling_points_next"] is None
        assert rest["registered"] == first["registered"] == 2  # totals never paged

    async def test_progress_is_for_the_command_center(self, scene):
        for who in ("P1", "L1"):
            r = await scene.client.get(
                f"/rounds/{scene.round_id}/progress", headers=scene.tokens[who]
            )
            assert r.status_code == 403
        r = await scene.client.get("/rounds/999/progress", headers=scene.tokens["admin"])
        assert r.status_code == 404


class TestUnderConcurrency:
    async def test_concurrent_scans_and_syncs_count_every_person_once(
        self, committed_client, engine, make_scene
    ):
        scene = await make_scene(committed_client).build(residents=30)
        tubes = scene.barcodes["P1"][:3]
        scans = [scene.sample(tubes[i % 3], scene.codes[i]) for i in range(24)]
        sync = scene.post(
            f"/rounds/{scene.round_id}/sync",
            {
                "events": [
                    {
                        "event_id": f"e{i}",
                        "type": "sample",
                        "tube": scene.barcodes["P1"][3],
                        "resident_code": scene.codes[24 + i],
                        "at": "2026-11-22T10:00:00+08:00",
                    }
                    for i in range(6)
                ]
            },
            "P1",
        )
        answers = await asyncio.gather(*scans, sync)
        assert {a.status_code for a in answers} <= {200, 201, 409}
        async with engine.connect() as conn:
            samples = await conn.scalar(text("SELECT count(*) FROM samples"))
            people = await conn.scalar(text("SELECT count(DISTINCT resident_id) FROM samples"))
        body = await progress(scene)
        assert body["samples"] == samples > 0
        assert body["registered"] == people
        async with engine.connect() as conn:
            open_tubes = await conn.scalar(text("SELECT count(*) FROM tubes WHERE state = 'open'"))
        assert body["tubes"]["open"] == open_tubes


class TestReport:
    async def test_the_report_renders_chinese_figures_charts_and_masked_positives(self, scene):
        p1 = scene.barcodes["P1"]
        await scene.fill(p1[0], [0, 1, 2])
        await scene.ship([p1[0]], box="B1")
        await scene.upload_lis([f"A3,{p1[0]},{POSITIVE}"], "PL1")
        await scene.fill(p1[5], [1], kind="single")
        await scene.ship([p1[5]], box="B2")
        await scene.upload_lis([f"A3,{p1[5]},{POSITIVE}"], "PL2")
        r = await scene.client.get(
            f"/rounds/{scene.round_id}/report.pdf", headers=scene.tokens["admin"]
        )
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "application/pdf"
        reader = PdfReader(io.BytesIO(r.content))
        extracted = "".join(page.extract_text() for page in reader.pages)
        for expected in (
            "第1轮",
            "越秀区",
            "海珠区",
            "实验室L1",
            "确诊阳性",
            "混管阳性复核",
            "Sealed-to-result",
            "Progress over time",
            scene.codes[1],
        ):
            assert expected in extracted, expected
        assert "3 / 5,000" in extracted  # people swabbed / population
        assert "采样人次 Swabs taken (re-tests included)\n4" in extracted
        assert scene.names[1] not in extracted and scene.ids[1] not in extracted
        assert scene.ids[1][-4:] in extracted  # the masked ID keeps its last digits

    async def test_the_report_is_for_the_command_center(self, scene):
        r = await scene.client.get(
            f"/rounds/{scene.round_id}/report.pdf", headers=scene.tokens["P1"]
        )
        assert r.status_code == 403
