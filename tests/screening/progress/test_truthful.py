"""The command center tells the truth (issue 13): people sampled, not samples; positive
pools apart from positive singles; each lab's own turnaround; the points that lag;
the newest events for a screen that opens; local times on the sheets people read."""

from __future__ import annotations

import asyncio
import io
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from pypdf import PdfReader
from sqlalchemy import text

from reports.recall import RecallCase, RecallMember, render_recall_sheet
from screening.config import Settings

POSITIVE, SUSPICIOUS, NEGATIVE = "30.1,31.2,26", ",35.0,26", ",,26"
SHANGHAI = ZoneInfo("Asia/Shanghai")


async def progress(scene, **params):
    r = await scene.client.get(
        f"/rounds/{scene.round_id}/progress", headers=scene.tokens["admin"], params=params
    )
    assert r.status_code == 200, r.text
    return r.json()


def by(items, key):
    return {item[key]: item for item in items}


def pdf_text(content: bytes) -> str:
    return "".join(page.extract_text() for page in PdfReader(io.BytesIO(content)).pages)


class TestPeopleNotSamples:
    async def test_a_re_test_adds_a_sample_but_not_a_person(self, scene):
        p1, q1 = scene.barcodes["P1"], scene.barcodes["Q1"]
        await scene.fill(p1[0], [0, 1, 2])
        await scene.fill(q1[0], [0], who="Q1", kind="single")  # person 0 again, elsewhere
        await scene.fill(p1[1], [1], kind="single")  # person 1 again, same point
        body = await progress(scene)
        assert (body["registered"], body["samples"]) == (3, 5)
        points = by(body["sampling_points"], "sampling_point")
        # a person counts once, where they were first sampled
        assert (points["P1"]["registered"], points["P1"]["samples"]) == (3, 4)
        assert (points["Q1"]["registered"], points["Q1"]["samples"]) == (0, 1)
        districts = by(body["districts"], "district")
        assert (districts["D1"]["registered"], districts["D1"]["coverage"]) == (3, 0.001)
        assert (districts["D2"]["registered"], districts["D2"]["samples"]) == (0, 1)

    async def test_a_person_sampled_in_two_rounds_counts_in_each(self, scene):
        await scene.fill(scene.barcodes["P1"][0], [0, 1])
        second = await scene.ok(
            "/rounds",
            {
                "name": "第2轮",
                "pool_size": 10,
                "districts": ["D1"],
                "starts_at": "2026-11-23T06:00:00+08:00",
                "deadline": "2026-11-24T06:00:00+08:00",
            },
        )
        issued = await scene.ok(
            f"/rounds/{second['id']}/barcodes", {"sampling_point": "P1", "count": 2}
        )
        listing = await scene.client.get(
            f"/rounds/{second['id']}/barcodes/{issued['range_id']}", headers=scene.tokens["admin"]
        )
        tube = listing.json()["barcodes"][0]
        r = await scene.post(
            f"/rounds/{second['id']}/samples", {"tube": tube, "resident_code": scene.codes[0]}, "P1"
        )
        assert r.status_code == 201, r.text
        assert (await progress(scene))["registered"] == 2
        r = await scene.client.get(
            f"/rounds/{second['id']}/progress", headers=scene.tokens["admin"]
        )
        assert (r.json()["registered"], r.json()["samples"]) == (1, 1)


class TestPeopleUnderConcurrency:
    async def test_one_person_scanned_at_once_at_three_points_counts_once_without_deadlock(
        self, committed_client, engine, make_scene
    ):
        """Single tubes seal on their first scan, so every scan moves the tube counters
        at the end of its statement while another scan of the same person waits on the
        person row: the lock order (tube, person, counters) keeps this from deadlocking."""
        scene = await make_scene(committed_client).build(residents=12)
        scans = [
            scene.sample(scene.barcodes[point][person], scene.codes[person], point, kind="single")
            for person in range(12)
            for point in ("P1", "P2", "Q1")
        ]
        answers = await asyncio.gather(*scans)
        assert [a.status_code for a in answers] == [201] * 36, [a.text for a in answers]
        async with engine.connect() as conn:
            first_points = (
                await conn.execute(
                    text("""
                    SELECT p.code, count(*) FROM (
                        SELECT DISTINCT ON (s.resident_id) s.tube_serial FROM samples s
                        ORDER BY s.resident_id, s.id) f
                    JOIN tubes t ON t.serial = f.tube_serial
                    JOIN sampling_points p ON p.id = t.sampling_point_id GROUP BY p.code
                    """)
                )
            ).all()
        body = await progress(scene)
        assert (body["registered"], body["samples"]) == (12, 36)
        points = by(body["sampling_points"], "sampling_point")
        for code, people in first_points:
            assert points[code]["registered"] == people, code
        assert sum(p["registered"] for p in points.values()) == 12


class TestPoolsApartFromSingles:
    async def test_positive_pools_count_pool_tubes_only(self, scene):
        p1 = scene.barcodes["P1"]
        await scene.fill(p1[0], [0, 1, 2])
        await scene.fill(p1[1], [3, 4])
        await scene.fill(p1[2], [5], kind="single")
        await scene.fill(p1[3], [6], kind="single")
        await scene.ship(p1[:4], box="B1")
        await scene.upload_lis(
            [
                f"A3,{p1[0]},{POSITIVE}",
                f"A4,{p1[1]},{SUSPICIOUS}",
                f"A5,{p1[2]},{POSITIVE}",
                f"A6,{p1[3]},{SUSPICIOUS}",
            ],
            "PL1",
        )
        body = await progress(scene)
        assert body["results"]["positive"] == 2 and body["results"]["suspicious"] == 2
        assert body["pools"] == {"positive": 1, "suspicious": 1}
        assert body["singles"] == {"positive": 1, "suspicious": 1}
        [lab] = body["labs"]
        assert (lab["pools"], lab["singles"]) == (body["pools"], body["singles"])
        assert by(body["districts"], "district")["D1"]["pools"] == body["pools"]

    async def test_a_pool_of_one_is_counted_as_a_single(self, scene):
        rnd = await scene.ok(
            "/rounds",
            {
                "name": "隔离点轮次",
                "pool_size": 1,
                "districts": ["D1"],
                "starts_at": "2026-11-23T06:00:00+08:00",
                "deadline": "2026-11-24T06:00:00+08:00",
            },
        )
        issued = await scene.ok(
            f"/rounds/{rnd['id']}/barcodes", {"sampling_point": "P1", "count": 2}
        )
        listing = await scene.client.get(
            f"/rounds/{rnd['id']}/barcodes/{issued['range_id']}", headers=scene.tokens["admin"]
        )
        tube = listing.json()["barcodes"][0]
        r = await scene.post(
            f"/rounds/{rnd['id']}/samples", {"tube": tube, "resident_code": scene.codes[0]}, "P1"
        )
        assert r.status_code == 201 and r.json()["capacity"] == 1, r.text
        await scene.ship([tube], box="ISO", round_id=rnd["id"])
        await scene.upload_lis([f"A3,{tube},{POSITIVE}"], "ISO-PL")
        r = await scene.client.get(f"/rounds/{rnd['id']}/progress", headers=scene.tokens["admin"])
        body = r.json()
        assert body["results"]["positive"] == 1
        assert body["pools"] == {"positive": 0, "suspicious": 0}
        assert body["singles"] == {"positive": 1, "suspicious": 0}


class TestLabTurnaround:
    async def test_each_lab_shows_its_own_turnaround(self, scene, db_session):
        p1 = scene.barcodes["P1"]
        await scene.fill(p1[0], [0, 1])
        await scene.fill(p1[1], [2, 3])
        await scene.ship([p1[0]], box="FAST", lab="L1")
        await scene.ship([p1[1]], box="SLOW", lab="L2")
        # L2 received its tube three hours ago and has only now resulted it; the tube
        # left the point four hours ago
        await db_session.execute(
            text(
                "UPDATE tubes SET received_at = now() - interval '3 hours',"
                " sealed_at = now() - interval '4 hours' WHERE barcode = :b"
            ),
            {"b": p1[1]},
        )
        await scene.upload_lis([f"A3,{p1[0]},{NEGATIVE}"], "PL-L1", lab="L1")
        await scene.upload_lis([f"A3,{p1[1]},{NEGATIVE}"], "PL-L2", lab="L2")
        body = await progress(scene)
        labs = by(body["labs"], "lab")
        assert labs["L1"]["in_lab_hours"] == {"p50": 0.08, "p95": 0.08}
        assert labs["L2"]["in_lab_hours"] == {"p50": 3.08, "p95": 3.08}
        assert labs["L1"]["turnaround_hours"] == {"p50": 0.08, "p95": 0.08}
        assert labs["L2"]["turnaround_hours"] == {"p50": 4.08, "p95": 4.08}
        # the round's figure is over both labs' tubes, unlike either lab's own
        assert body["turnaround_hours"] == {"p50": 0.08, "p95": 4.08}


class TestPointsThatLag:
    async def test_points_come_laggards_first_a_page_at_a_time(self, scene, db_session):
        await scene.fill(scene.barcodes["P1"][0], [0, 1, 2])
        await scene.fill(scene.barcodes["Q1"][0], [3, 4], who="Q1")
        url = f"/rounds/{scene.round_id}/progress/sampling-points"
        r = await scene.client.get(url, headers=scene.tokens["admin"], params={"limit": 2})
        assert r.status_code == 200, r.text
        first = r.json()
        # the round's sampling window is over: each point should have its whole share
        # (D1's 3,000 people over P1 and P2, which swab alike; D2's 2,000 at Q1)
        assert [p["sampling_point"] for p in first["items"]] == ["P2", "Q1"]
        p2, q1 = first["items"]
        assert (p2["registered"], p2["target"], p2["expected"], p2["pace"]) == (0, 1500, 1500, 0)
        assert (q1["registered"], q1["target"], q1["pace"]) == (2, 2000, 0.001)
        assert (first["total"], first["lagging"], first["next_cursor"]) == (3, 3, "2")
        assert all(p["lagging"] for p in first["items"])
        rest = (
            await scene.client.get(
                url, headers=scene.tokens["admin"], params={"limit": 2, "cursor": "2"}
            )
        ).json()
        [p1] = rest["items"]
        assert (p1["sampling_point"], p1["registered"], p1["unshipped_tubes"]) == ("P1", 3, 1)
        assert rest["next_cursor"] is None
        by_code = (
            await scene.client.get(url, headers=scene.tokens["admin"], params={"order": "code"})
        ).json()
        assert [p["sampling_point"] for p in by_code["items"]] == ["P1", "P2", "Q1"]

    async def test_a_point_on_pace_is_not_lagging_unless_a_box_is_late(self, scene, db_session):
        now = datetime.now(UTC)
        await db_session.execute(
            text("UPDATE rounds SET starts_at = :s, deadline = :d WHERE id = :id"),
            {"s": now - timedelta(minutes=2), "d": now + timedelta(hours=22), "id": scene.round_id},
        )
        # two minutes into a six-hour window, P1's share of 1,500 expects 8 people (9
        # after 2.16 minutes, 12 after 2.88: 10 keep pace with room for a slow machine)
        tube = scene.barcodes["P1"][0]
        await scene.fill(tube, range(10))
        url = f"/rounds/{scene.round_id}/progress/sampling-points"
        points = by(
            (await scene.client.get(url, headers=scene.tokens["admin"])).json()["items"],
            "sampling_point",
        )
        assert points["P1"]["expected"] >= 8 and points["P1"]["lagging"] is False
        assert points["P2"]["lagging"] is True  # nobody yet, 8 or more expected
        await scene.ship([tube], box="LATE", lab="L1")
        await db_session.execute(
            text("UPDATE boxes SET state = 'in_transit', dispatched_at = now() - interval '3h'")
        )
        points = by(
            (await scene.client.get(url, headers=scene.tokens["admin"])).json()["items"],
            "sampling_point",
        )
        assert points["P1"]["boxes_late"] == 1 and points["P1"]["lagging"] is True

    async def test_the_pace_list_is_for_the_command_center(self, scene):
        url = f"/rounds/{scene.round_id}/progress/sampling-points"
        assert (await scene.client.get(url, headers=scene.tokens["P1"])).status_code == 403
        r = await scene.client.get(
            "/rounds/999/progress/sampling-points", headers=scene.tokens["admin"]
        )
        assert r.status_code == 404


class TestRecentEvents:
    async def test_a_screen_that_opens_gets_the_newest_events_and_where_to_follow(self, scene):
        p1 = scene.barcodes["P1"]
        for n, tube in enumerate(p1[:2]):
            await scene.fill(tube, [2 * n, 2 * n + 1])
            await scene.ship([tube], box=f"B{n}")
            await scene.upload_lis([f"A3,{tube},{POSITIVE}"], f"PL{n}")
        url = f"/rounds/{scene.round_id}/events/recent"
        body = (await scene.client.get(url, headers=scene.tokens["admin"])).json()
        kinds = [(e["kind"], e["case_id"]) for e in body["items"]]
        assert [k for k, _ in kinds] == ["case-opened", "case-opened"]
        assert kinds[0][1] > kinds[1][1]  # newest first
        assert body["last_id"] == body["items"][0]["id"]
        assert body["items"][0]["sampling_point"] == "P1"
        limited = await scene.client.get(url, headers=scene.tokens["admin"], params={"limit": 1})
        assert [e["id"] for e in limited.json()["items"]] == [body["items"][0]["id"]]
        assert (await scene.client.get(url, headers=scene.tokens["P1"])).status_code == 403

    async def test_an_idle_round_has_none_yet(self, scene):
        url = f"/rounds/{scene.round_id}/events/recent"
        body = (await scene.client.get(url, headers=scene.tokens["admin"])).json()
        assert body == {"items": [], "last_id": 0}


class TestLocalTimes:
    async def test_the_recall_sheet_prints_local_times_and_names_the_zone(self, scene, db_session):
        tube = scene.barcodes["P1"][0]
        await scene.fill(tube, [0, 1])
        await scene.ship([tube], box="B1")
        await scene.upload_lis([f"A3,{tube},{POSITIVE}"], "PL1")
        case_id, opened_at = (
            await db_session.execute(text("SELECT id, opened_at FROM retest_cases"))
        ).one()
        r = await scene.client.get(
            f"/rounds/{scene.round_id}/retests/{case_id}/recall.pdf", headers=scene.tokens["admin"]
        )
        extracted = pdf_text(r.content)
        local = opened_at.astimezone(SHANGHAI)
        assert f"开案 Opened: {local:%Y-%m-%d %H:%M} (Asia/Shanghai UTC+08:00)" in extracted
        assert f"{opened_at.astimezone(UTC):%Y-%m-%d %H:%M}" not in extracted

    async def test_the_round_report_prints_local_times_and_names_the_zone(self, scene, db_session):
        tube = scene.barcodes["P1"][5]
        await scene.fill(tube, [1], kind="single")
        await scene.ship([tube], box="B1")
        await scene.upload_lis([f"A3,{tube},{POSITIVE}"], "PL1")
        resulted_at = await db_session.scalar(
            text("SELECT resulted_at FROM tubes WHERE barcode = :b"), {"b": tube}
        )
        r = await scene.client.get(
            f"/rounds/{scene.round_id}/report.pdf", headers=scene.tokens["admin"]
        )
        extracted = pdf_text(r.content)
        local = resulted_at.astimezone(SHANGHAI)
        assert "本报告时间均为 Asia/Shanghai UTC+08:00 当地时间" in extracted
        assert f"{local:%m-%d %H:%M}" in extracted  # the positive's report time
        assert f"{local:%d日%H时}" in extracted  # the progress chart's hours
        assert f"{resulted_at.astimezone(UTC):%m-%d %H:%M}" not in extracted

    def test_another_zone_prints_its_own_clock(self):
        opened = datetime(2026, 11, 23, 1, 30, tzinfo=UTC)
        case = RecallCase(1, "第1轮", "T1", "positive", "P1 采样点", "中山路1号", "L1", opened)
        member = RecallMember("CODE", "张三", None, "to-recall", None)
        zone = ZoneInfo("America/New_York")
        extracted = pdf_text(render_recall_sheet(case, [member], printed_at=opened, zone=zone))
        assert "2026-11-22 20:30 (America/New_York UTC-05:00)" in extracted

    def test_the_zone_is_a_setting_and_a_wrong_one_is_refused(self):
        assert Settings().timezone == "Asia/Shanghai"
        assert str(Settings(timezone="Europe/Berlin").zone) == "Europe/Berlin"
        with pytest.raises(ValueError, match="unknown time zone"):
            Settings(timezone="Mars/Olympus")
