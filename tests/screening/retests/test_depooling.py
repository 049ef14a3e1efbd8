"""De-pooling through the HTTP API (API.md De-pooling, DOMAIN.md step 8): positive and
suspicious pools open one case each, single re-tests link and resolve it, invalid
singles recall again, discordant cases reach the review list, roles see their own."""

from __future__ import annotations

import asyncio
import io

import httpx
import orjson
import pytest
from pypdf import PdfReader
from sqlalchemy import text

from screening.app import create_app
from screening.retests.sweeper import sweep

POSITIVE, SUSPICIOUS, NEGATIVE, INVALID = "30.1,31.2,26", ",35.0,26", ",,26", ",,"


async def positive_pool(scene, people=(0, 1, 2), *, tube_no=0, cts=POSITIVE, plate="PL1"):
    """A P1 pool of ``people``, shipped to L1 and resulted with ``cts``; its barcode."""
    tube = scene.barcodes["P1"][tube_no]
    await scene.fill(tube, list(people))
    await scene.ship([tube], box=f"BOX-{tube_no}")
    await scene.upload_lis([f"A3,{tube},{cts}"], plate)
    return tube


async def singles(scene, people, *, first_tube=10, who="P1", box="SINGLES"):
    """Each person swabbed alone in a single tube, shipped to L1; their tubes."""
    point = who
    tubes = []
    for k, person in enumerate(people):
        tube = scene.barcodes[point][first_tube + k]
        await scene.fill(tube, [person], who, kind="single")
        tubes.append(tube)
    await scene.ship(tubes, box=box, who=who)
    return tubes


async def cases(scene, who="admin", **params):
    r = await scene.client.get(
        f"/rounds/{scene.round_id}/retests", headers=scene.tokens[who], params=params
    )
    assert r.status_code == 200, r.text
    return r.json()["items"]


class TestOpening:
    async def test_a_positive_pool_opens_a_case_with_every_member_to_recall(self, scene):
        tube = await positive_pool(scene)
        [case] = await cases(scene)
        assert (case["pool_tube"], case["pool_result"], case["status"]) == (
            tube,
            "positive",
            "open",
        )
        assert case["sampling_point"] == "P1" and case["lab"] == "L1"
        assert sorted(m["resident_code"] for m in case["members"]) == sorted(scene.codes[:3])
        assert {m["status"] for m in case["members"]} == {"to-recall"}
        assert case["overdue"] is False and case["discordant"] is None

    async def test_members_are_masked(self, scene):
        await positive_pool(scene)
        [case] = await cases(scene)
        member = next(m for m in case["members"] if m["resident_code"] == scene.codes[0])
        assert member["name_masked"] != scene.names[0] and "*" in member["name_masked"]
        assert member["id_masked"].count("*") >= 10
        assert member["phone_masked"] is not None and "*" in member["phone_masked"]
        text_of_answer = str(case)
        for i in range(3):
            assert scene.ids[i] not in text_of_answer and scene.names[i] not in text_of_answer

    async def test_a_suspicious_pool_opens_a_case_too(self, scene):
        await positive_pool(scene, cts=SUSPICIOUS)
        [case] = await cases(scene)
        assert case["pool_result"] == "suspicious"

    async def test_negative_and_invalid_pools_open_none(self, scene):
        await positive_pool(scene, cts=NEGATIVE)
        await positive_pool(scene, people=(3,), tube_no=1, cts=INVALID, plate="PL2")
        assert await cases(scene) == []

    async def test_a_repeated_or_amended_result_never_opens_a_second_case(self, scene, db_session):
        tube = await positive_pool(scene)
        await scene.upload_lis([f"A3,{tube},29.0,30.0,26"], "PL1-RERUN")  # a new version
        await scene.upload_lis([f"A3,{tube},{SUSPICIOUS}"], "PL1-RERUN2")
        assert len(await cases(scene)) == 1
        assert await db_session.scalar(text("SELECT count(*) FROM retest_members")) == 3

    async def test_the_case_opens_in_the_upload_transaction(self, scene, db_session):
        """A failing upload leaves neither result nor case behind."""
        tube = scene.barcodes["P1"][0]
        await scene.fill(tube, [0, 1])
        await scene.ship([tube], box="B")
        await db_session.execute(
            text(
                "CREATE FUNCTION fail_members() RETURNS trigger LANGUAGE plpgsql AS"
                " $$ BEGIN RAISE EXCEPTION 'boom'; END $$"
            )
        )
        await db_session.execute(
            text(
                "CREATE TRIGGER fail_members BEFORE INSERT ON retest_members"
                " FOR EACH ROW EXECUTE FUNCTION fail_members()"
            )
        )
        lines = "plate,well,sample,role,ORF1ab,N,IC\nP,A1,NTC,ntc,,,\nP,A2,PC,pc,28,29,27\n"
        r = await scene.client.post(
            "/labs/L1/results",
            headers=scene.tokens["L1"],
            files={"file": ("p.csv", (lines + f"P,A3,{tube},sample,{POSITIVE}\n").encode())},
        )
        assert r.status_code == 500
        counts = await db_session.execute(
            text("SELECT (SELECT count(*) FROM results), (SELECT count(*) FROM retest_cases)")
        )
        assert tuple(counts.one()) == (0, 0)


class TestConcurrency:
    async def test_two_uploads_racing_on_one_pool_open_one_case(
        self, committed_client, engine, make_scene
    ):
        scene = await make_scene(committed_client).build(residents=4)
        tube = scene.barcodes["P1"][0]
        await scene.fill(tube, [0, 1, 2])
        await scene.ship([tube], box="RACE")
        answers = await asyncio.gather(
            *(scene.upload_lis([f"A3,{tube},{POSITIVE}"], f"RACE-{k}") for k in range(4))
        )
        assert len({a["upload_id"] for a in answers}) == 4
        async with engine.connect() as conn:
            row = (
                await conn.execute(
                    text(
                        "SELECT (SELECT count(*) FROM retest_cases),"
                        " (SELECT count(*) FROM retest_members),"
                        " (SELECT count(*) FROM retest_events WHERE kind = 'case-opened')"
                    )
                )
            ).one()
        assert tuple(row) == (1, 3, 1)


class TestResampling:
    async def test_a_single_tube_moves_the_member_to_resampled(self, scene):
        await positive_pool(scene)
        await singles(scene, [0])
        [case] = await cases(scene)
        by_code = {m["resident_code"]: m for m in case["members"]}
        assert by_code[scene.codes[0]]["status"] == "resampled"
        assert by_code[scene.codes[0]]["single_tube"] == scene.barcodes["P1"][10]
        assert by_code[scene.codes[1]]["status"] == "to-recall"

    async def test_an_offline_sync_links_single_tubes_too(self, scene):
        await positive_pool(scene)
        tube = scene.barcodes["P1"][11]
        r = await scene.post(
            f"/rounds/{scene.round_id}/sync",
            {
                "events": [
                    {
                        "event_id": "s-1",
                        "type": "sample",
                        "tube": tube,
                        "resident_code": scene.codes[1],
                        "kind": "single",
                        "at": "2026-11-22T10:00:00+08:00",
                    }
                ]
            },
            "P1",
        )
        assert r.status_code == 200 and r.json()["applied"] == 1, r.text
        [case] = await cases(scene)
        member = next(m for m in case["members"] if m["resident_code"] == scene.codes[1])
        assert (member["status"], member["single_tube"]) == ("resampled", tube)

    async def test_a_pooled_sample_does_not_count_as_a_re_test(self, scene):
        await positive_pool(scene)
        refused = await scene.sample(scene.barcodes["P1"][5], scene.codes[0])
        assert (refused.status_code, refused.json()["type"]) == (409, "needs-single")
        [case] = await cases(scene)
        assert {m["status"] for m in case["members"]} == {"to-recall"}

    async def test_single_results_resolve_the_case_and_the_query_follows(self, scene):
        await positive_pool(scene, people=(0, 1))
        assert [await scene.status_of(p) for p in (0, 1)] == ["retest", "retest"]
        t = await singles(scene, [0, 1])
        await scene.upload_lis([f"A3,{t[0]},{NEGATIVE}", f"A4,{t[1]},{POSITIVE}"], "SINGLE-1")
        [case] = await cases(scene)
        assert case["status"] == "resolved" and case["discordant"] is False
        statuses = {m["resident_code"]: m["status"] for m in case["members"]}
        assert statuses == {scene.codes[0]: "negative", scene.codes[1]: "positive"}
        assert [await scene.status_of(p) for p in (0, 1)] == ["negative", "positive"]
        assert await cases(scene, status="open") == []
        assert len(await cases(scene, status="resolved")) == 1

    async def test_an_invalid_single_recalls_the_member_again(self, scene):
        await positive_pool(scene, people=(0,))
        [first] = await singles(scene, [0])
        await scene.upload_lis([f"A3,{first},{INVALID}"], "SINGLE-1")
        [case] = await cases(scene)
        assert (case["status"], case["members"][0]["status"]) == ("open", "invalid")
        assert await scene.status_of(0) == "invalid"
        [second] = await singles(scene, [0], first_tube=12, box="SINGLES-2")
        [case] = await cases(scene)
        assert (case["members"][0]["status"], case["members"][0]["single_tube"]) == (
            "resampled",
            second,
        )
        await scene.upload_lis([f"A3,{second},{NEGATIVE}"], "SINGLE-2")
        [case] = await cases(scene)
        assert case["status"] == "resolved"

    async def test_all_members_negative_is_discordant_and_reaches_the_review_list(self, scene):
        await positive_pool(scene, people=(0, 1))
        t = await singles(scene, [0, 1])
        await scene.upload_lis([f"A3,{t[0]},{NEGATIVE}", f"A4,{t[1]},{NEGATIVE}"], "SINGLE-1")
        [case] = await cases(scene)
        assert (case["status"], case["discordant"]) == ("resolved", True)
        for who, expected in (("admin", 1), ("L1", 1), ("L2", 0)):
            r = await scene.client.get(
                f"/rounds/{scene.round_id}/retests/review", headers=scene.tokens[who]
            )
            assert r.status_code == 200, r.text
            assert len(r.json()["items"]) == expected, who
        r = await scene.client.get(
            f"/rounds/{scene.round_id}/retests/review", headers=scene.tokens["P1"]
        )
        assert r.status_code == 403

    async def test_the_history_keeps_every_change_in_order_with_who_made_it(self, scene):
        await positive_pool(scene, people=(0,))
        [tube] = await singles(scene, [0])
        await scene.upload_lis([f"A3,{tube},{NEGATIVE}"], "SINGLE-1")
        [case] = await cases(scene)
        r = await scene.client.get(
            f"/rounds/{scene.round_id}/retests/{case['case_id']}", headers=scene.tokens["admin"]
        )
        assert r.status_code == 200, r.text
        history = [
            (h["kind"], h["from_status"], h["to_status"], h["actor"].split(":")[0])
            for h in r.json()["history"]
        ]
        assert history == [
            ("case-opened", None, "open", "lab"),
            ("member-resampled", "to-recall", "resampled", "sampler"),
            ("member-resulted", "resampled", "negative", "lab"),
            ("case-resolved", "open", "resolved", "lab"),
        ]
        assert r.json()["history"][1]["resident_code"] == scene.codes[0]


class TestWhoSeesWhat:
    async def test_a_sampler_sees_its_own_points_cases_only(self, scene):
        await positive_pool(scene)
        assert len(await cases(scene, "P1")) == 1
        assert await cases(scene, "P2") == []
        [case] = await cases(scene)
        r = await scene.client.get(
            f"/rounds/{scene.round_id}/retests/{case['case_id']}", headers=scene.tokens["P2"]
        )
        assert r.status_code == 404

    async def test_labs_and_strangers_are_refused(self, scene):
        for headers, status in ((scene.tokens["L1"], 403), ({}, 401)):
            r = await scene.client.get(f"/rounds/{scene.round_id}/retests", headers=headers)
            assert r.status_code == status

    async def test_an_unknown_round_is_not_found(self, scene):
        r = await scene.client.get("/rounds/999/retests", headers=scene.tokens["admin"])
        assert (r.status_code, r.json()["type"]) == (404, "not-found")


class TestOverdue:
    async def test_late_members_and_cases_are_flagged_once_by_the_sweep(
        self, scene, settings, db_session
    ):
        await positive_pool(scene, people=(0, 1))
        await singles(scene, [0])
        late = settings.model_copy(
            update={"retest_member_overdue_minutes": 0, "retest_case_overdue_minutes": 0}
        )
        conn = await db_session.connection()
        await sweep(conn, settings)  # not late yet
        [case] = await cases(scene)
        assert case["overdue"] is False
        await sweep(conn, late)
        await sweep(conn, late)
        [case] = await cases(scene)
        assert case["overdue"] is True
        flags = {m["resident_code"]: m["overdue"] for m in case["members"]}
        assert flags == {scene.codes[0]: False, scene.codes[1]: True}  # 0 was re-sampled
        kinds = (
            await db_session.execute(
                text("SELECT kind, count(*) FROM retest_events GROUP BY kind ORDER BY kind")
            )
        ).all()
        assert dict(kinds)["case-overdue"] == 1 and dict(kinds)["member-overdue"] == 1

    async def test_reading_cases_or_listening_never_flags(
        self, committed_client, make_scene, settings, engine
    ):
        """Overdue flags come from the background sweep only: a read writes nothing,
        however late the case (issue 15)."""
        scene = await make_scene(committed_client).build(residents=2)
        await positive_pool(scene, people=(0, 1))
        late = settings.model_copy(
            update={"retest_member_overdue_minutes": 0, "retest_case_overdue_minutes": 0}
        )
        transport = httpx.ASGITransport(app=create_app(late, engine=engine))
        async with httpx.AsyncClient(transport=transport, base_url="http://test/api/v1") as c:
            admin = scene.tokens["admin"]
            r = await c.get(f"/rounds/{scene.round_id}/retests", headers=admin)
            assert r.json()["items"][0]["overdue"] is False
            r = await c.get("/events", params={"after": 0, "max_seconds": 0.3}, headers=admin)
            assert [f["event"] for f in frames(r.text)] == ["case-opened"]
        async with engine.connect() as conn:
            flagged = await conn.scalar(
                text("SELECT count(*) FROM retest_cases WHERE overdue_at IS NOT NULL")
            )
        assert flagged == 0


class TestAdvice:
    async def test_advice_counts_people_where_they_were_swabbed(self, scene):
        await positive_pool(scene, people=(0, 1, 2))
        t = await singles(scene, [0, 1, 2])
        await scene.upload_lis(
            [f"A3,{t[0]},{POSITIVE}", f"A4,{t[1]},{NEGATIVE}", f"A5,{t[2]},{NEGATIVE}"], "S-1"
        )
        r = await scene.client.get(
            f"/rounds/{scene.round_id}/advice", headers=scene.tokens["admin"]
        )
        assert r.status_code == 200, r.text
        d1, d2 = r.json()["districts"]
        assert (d1["district"], d1["tested"], d1["positive"]) == ("D1", 3, 1)
        assert d1["prevalence"] == pytest.approx(1 / 3)
        assert d1["interval"]["low"] < 1 / 3 < d1["interval"]["high"]
        assert set(d1["expected_tests"]) == {"1", "5", "10", "20"}
        assert d1["ct_shift"]["10"] == pytest.approx(3.32)
        assert (d1["recommended"], d1["pool_size"]) == (10, 10)  # too few people to move
        assert (d2["district"], d2["tested"], d2["prevalence"], d2["recommended"]) == (
            "D2",
            0,
            None,
            20,
        )

    async def test_advice_is_for_the_command_center(self, scene):
        for who in ("P1", "L1"):
            r = await scene.client.get(
                f"/rounds/{scene.round_id}/advice", headers=scene.tokens[who]
            )
            assert r.status_code == 403


class TestRecallSheet:
    async def test_the_sheet_shows_full_names_phones_and_the_address_and_is_audited(
        self, scene, db_session
    ):
        await positive_pool(scene, people=(0, 1))
        [case] = await cases(scene)
        url = f"/rounds/{scene.round_id}/retests/{case['case_id']}/recall.pdf"
        r = await scene.client.get(url, headers=scene.tokens["admin"])
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "application/pdf"
        assert r.headers["cache-control"] == "no-store"
        extracted = "".join(p.extract_text() for p in PdfReader(io.BytesIO(r.content)).pages)
        for person in (0, 1):
            assert scene.names[person] in extracted
            assert f"1380000{person:04d}" in extracted
            assert scene.codes[person] in extracted
            assert scene.ids[person] not in extracted
        assert "中山路1号" in extracted  # P1's address: where the tube was taken
        assert scene.names[2] not in extracted
        audit = (
            await db_session.execute(text("SELECT role, action, subject FROM audit_log"))
        ).all()
        assert [tuple(a) for a in audit] == [
            ("admin", "recall-sheet", f"retest_case:{case['case_id']}")
        ]

    async def test_only_the_command_center_downloads_it(self, scene, db_session):
        await positive_pool(scene)
        [case] = await cases(scene)
        url = f"/rounds/{scene.round_id}/retests/{case['case_id']}/recall.pdf"
        for who in ("P1", "L1"):
            assert (await scene.client.get(url, headers=scene.tokens[who])).status_code == 403
        r = await scene.client.get(
            f"/rounds/{scene.round_id}/retests/999/recall.pdf", headers=scene.tokens["admin"]
        )
        assert r.status_code == 404
        assert await db_session.scalar(text("SELECT count(*) FROM audit_log")) == 0


def frames(body: str) -> list[dict[str, str]]:
    """SSE frames as {id, event, data}; comments and the retry line dropped."""
    out = []
    for block in body.split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in block.splitlines() if line and not line.startswith(":")
        )
        if "event" in fields:
            out.append(fields)
    return out


class TestLiveFeed:
    async def test_the_feed_delivers_every_change_in_order(self, committed_client, make_scene):
        scene = await make_scene(committed_client).build(residents=4)
        await positive_pool(scene, people=(0,))
        [tube] = await singles(scene, [0])
        await scene.upload_lis([f"A3,{tube},{NEGATIVE}"], "SINGLE-1")
        r = await scene.client.get(
            "/events", params={"after": 0, "limit": 4}, headers=scene.tokens["admin"]
        )
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        got = frames(r.text)
        assert [f["event"] for f in got] == [
            "case-opened",
            "member-resampled",
            "member-resulted",
            "case-resolved",
        ]
        ids = [int(f["id"]) for f in got]
        assert ids == sorted(ids)
        data = orjson.loads(got[1]["data"])
        assert (data["resident_code"], data["from"], data["to"]) == (
            scene.codes[0],
            "to-recall",
            "resampled",
        )
        assert data["sampling_point"] == "P1"
        for person in range(4):
            assert scene.names[person] not in r.text and scene.ids[person] not in r.text

        # a reconnecting client resumes after the last event it saw
        r = await scene.client.get(
            "/events",
            params={"limit": 2},
            headers={**scene.tokens["admin"], "Last-Event-ID": str(ids[1])},
        )
        assert [f["event"] for f in frames(r.text)] == ["member-resulted", "case-resolved"]

        # a sampler of another point sees none of it; a lab may not listen
        r = await scene.client.get(
            "/events", params={"after": 0, "max_seconds": 0.3}, headers=scene.tokens["P2"]
        )
        assert r.status_code == 200 and frames(r.text) == []
        r = await scene.client.get(
            "/events", params={"after": 0, "limit": 1}, headers=scene.tokens["P1"]
        )
        assert [f["event"] for f in frames(r.text)] == ["case-opened"]
        r = await scene.client.get("/events", headers=scene.tokens["L1"])
        assert r.status_code == 403

    async def test_events_arriving_while_listening_are_streamed(self, committed_client, make_scene):
        scene = await make_scene(committed_client).build(residents=4)
        tube = scene.barcodes["P1"][0]
        await scene.fill(tube, [0, 1])
        await scene.ship([tube], box="LIVE")
        listening = asyncio.create_task(
            scene.client.get(
                "/events", params={"limit": 1, "max_seconds": 20}, headers=scene.tokens["admin"]
            )
        )
        await asyncio.sleep(0.3)  # the stream starts from "now"
        await scene.upload_lis([f"A3,{tube},{POSITIVE}"], "LIVE-1")
        r = await listening
        assert [f["event"] for f in frames(r.text)] == ["case-opened"]


class TestResidentQuery:
    async def test_a_re_test_in_a_later_round_answers_the_earlier_pool(self, scene):
        await positive_pool(scene, people=(0, 1))
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
            f"/rounds/{second['id']}/barcodes/{issued['range_id']}",
            headers=scene.tokens["admin"],
        )
        single = listing.json()["barcodes"][0]
        r = await scene.post(
            f"/rounds/{second['id']}/samples",
            {"tube": single, "resident_code": scene.codes[0], "kind": "single"},
            "P1",
        )
        assert r.status_code == 201, r.text
        [case] = await cases(scene)
        member = next(m for m in case["members"] if m["resident_code"] == scene.codes[0])
        assert member["status"] == "resampled"
        await scene.ship([single], box="R2", round_id=second["id"])
        await scene.upload_lis([f"A3,{single},{NEGATIVE}"], "R2-1")
        r = await scene.client.post(
            "/results/query", json={"id_number": scene.ids[0], "name": scene.names[0]}
        )
        items = r.json()["items"]
        assert [(i["round"], i["status"]) for i in items] == [
            ("第2轮", "negative"),
            ("第1轮", "negative"),  # the pool's re-test is answered
        ]
        assert await scene.status_of(1) == "retest"  # still waiting for their swab
