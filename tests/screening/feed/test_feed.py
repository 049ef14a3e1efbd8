"""The result feed for the health-code platform (API.md v1.1): who may read it, what an
item says, cursors, FHIR, the audit trail."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from fhir.resources.R4B.bundle import Bundle
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from screening.feed.schemas import FeedPage

NEG = ",,26"  # ORF1ab, N, IC: nothing amplifies, the internal control does
POS = "30.1,31.2,26"


async def platform_token(scene: Any) -> dict[str, str]:
    token = (await scene.ok("/tokens", {"role": "platform", "label": "健康码平台"}))["token"]
    return {"Authorization": f"Bearer {token}"}


async def read_all(
    client: httpx.AsyncClient, who: dict[str, str], after: int = 0, limit: int = 1000
) -> tuple[list[dict[str, Any]], int]:
    items: list[dict[str, Any]] = []
    while True:
        r = await client.get("/feed/results", params={"after": after, "limit": limit}, headers=who)
        assert r.status_code == 200, r.text
        page = r.json()
        FeedPage.model_validate(page)  # the hand-built JSON keeps to the documented schema
        items += page["items"]
        if not page["items"]:
            return items, after
        after = int(page["next_cursor"])


def latest(items: list[dict[str, Any]], id_number: str) -> dict[str, Any]:
    mine = [i for i in items if i["resident"]["id_number"] == id_number]
    assert mine, f"nothing fed for {id_number}"
    return mine[-1]


class TestWhoMayRead:
    @pytest.mark.parametrize("who", ["admin", "P1", "L1", None])
    async def test_only_a_platform_token_reads_the_feed(self, scene, who) -> None:
        headers = scene.tokens[who] if who else {}
        for path in ("/feed/results", "/feed/results.fhir"):
            r = await scene.client.get(path, headers=headers)
            assert r.status_code == (401 if who is None else 403), r.text
            assert r.headers["content-type"].startswith("application/problem+json")

    async def test_a_platform_token_reads_it(self, scene) -> None:
        r = await scene.client.get("/feed/results", headers=await platform_token(scene))
        assert r.status_code == 200
        assert r.json() == {"items": [], "next_cursor": "0"}


class TestWhatAnItemSays:
    async def test_a_swab_is_fed_as_pending_then_the_pool_result_as_final(self, scene) -> None:
        platform = await platform_token(scene)
        tube = scene.barcodes["P1"][0]
        await scene.fill(tube, range(3))
        items, cursor = await read_all(scene.client, platform)
        assert [i["status"] for i in items] == ["pending"] * 3
        first = items[0]
        assert first["resident"] == {
            "id_type": "prc_id",
            "id_number": scene.ids[0],
            "name": scene.names[0],
            "nationality": None,
        }
        assert first["result_kind"] == "provisional"
        assert first["tube"] == tube and first["pooled"] is True
        assert first["round_id"] == scene.round_id and first["reported_at"] is None

        await scene.ship([tube], "BOX1")
        await scene.upload_lis([f"A3,{tube},{NEG}"], "PL1")
        later, _ = await read_all(scene.client, platform, after=cursor)
        assert sorted(i["resident"]["id_number"] for i in later) == sorted(scene.ids[:3])
        for item in later:
            assert item["status"] == "negative" and item["result_kind"] == "final"
            assert item["lab"] == "L1" and item["reported_at"] is not None
            assert item["seq"] > int(cursor)

    async def test_a_de_pooled_case_is_provisional_then_final(self, scene) -> None:
        platform = await platform_token(scene)
        pool = scene.barcodes["P1"][0]
        await scene.fill(pool, range(2))
        await scene.ship([pool], "BOX1")
        await scene.upload_lis([f"A3,{pool},{POS}"], "PL1")
        items, cursor = await read_all(scene.client, platform)
        flagged = latest(items, scene.ids[0])
        assert (flagged["status"], flagged["result_kind"]) == ("retest", "provisional")
        assert flagged["pooled"] is True

        single = scene.barcodes["P1"][1]
        await scene.fill(single, [0], kind="single")
        await scene.ship([single], "BOX2")
        await scene.upload_lis([f"A3,{single},{NEG}"], "PL2")
        later, _ = await read_all(scene.client, platform, after=cursor)
        answer = latest(later, scene.ids[0])
        assert (answer["status"], answer["result_kind"]) == ("negative", "final")
        # the other member is still to be re-tested: nothing new for them
        assert all(i["resident"]["id_number"] != scene.ids[1] for i in later)
        assert await scene.status_of(0) == "negative" and await scene.status_of(1) == "retest"

    async def test_an_unchanged_standing_is_not_fed_again(self, scene) -> None:
        platform = await platform_token(scene)
        tube = scene.barcodes["P1"][0]
        await scene.fill(tube, range(2))
        await scene.ship([tube], "BOX1")  # sealing and receipt move the tube, not a standing
        items, _ = await read_all(scene.client, platform)
        assert [i["status"] for i in items] == ["pending", "pending"]


class TestCursors:
    async def test_any_page_boundary_resumes_without_gap_or_repeat(self, scene) -> None:
        platform = await platform_token(scene)
        tubes = scene.barcodes["P1"][:2]
        await scene.fill(tubes[0], range(10))
        await scene.fill(tubes[1], range(10, 14))
        full, _ = await read_all(scene.client, platform)
        seqs = [i["seq"] for i in full]
        assert len(full) == 14 and seqs == sorted(set(seqs))
        for limit in (1, 3, 5):
            paged, _ = await read_all(scene.client, platform, limit=limit)
            assert paged == full
        for k, item in enumerate(full):  # resuming from any cursor ever handed out
            rest, _ = await read_all(scene.client, platform, after=item["seq"])
            assert rest == full[k + 1 :]

    @pytest.mark.parametrize("after", ["-1", "x", "99999999999999999999999"])
    async def test_a_bad_cursor_is_a_problem_naming_it(self, scene, after) -> None:
        r = await scene.client.get(
            "/feed/results", params={"after": after}, headers=await platform_token(scene)
        )
        assert r.status_code == 422
        assert r.json()["type"] == "invalid-request"
        assert r.json()["errors"][0]["loc"][-1] == "after"


class TestFhir:
    async def test_every_page_is_a_valid_fhir_bundle_saying_the_same(self, scene) -> None:
        platform = await platform_token(scene)
        pool, single = scene.barcodes["P1"][:2]
        await scene.fill(pool, range(3))
        await scene.ship([pool], "BOX1")
        await scene.upload_lis([f"A3,{pool},{POS}"], "PL1")
        await scene.fill(single, [0], kind="single")
        await scene.ship([single], "BOX2")
        await scene.upload_lis([f"A3,{single},{NEG}"], "PL2")
        items, _ = await read_all(scene.client, platform)
        after, seen = 0, []
        while True:
            r = await scene.client.get(
                "/feed/results.fhir", params={"after": after, "limit": 2}, headers=platform
            )
            assert r.status_code == 200 and r.headers["content-type"] == "application/fhir+json"
            bundle = Bundle.model_validate_json(r.content)  # raises on anything invalid
            assert bundle.type == "collection"
            cursor = bundle.meta.tag[0].code
            seen += [e.resource for e in bundle.entry or []]
            if not bundle.entry:
                assert cursor == str(after)
                break
            after = int(cursor)
        assert len(seen) == len(items)
        values = {"negative": "260415000", "retest": "260373001", "pending": None}
        for obs, item in zip(seen, items, strict=True):
            assert obs.code.coding[0].system == "http://loinc.org"
            assert obs.code.coding[0].code == "94500-6"
            assert obs.meta.tag[0].code == str(item["seq"])
            assert obs.status == ("final" if item["result_kind"] == "final" else "preliminary")
            value = obs.valueCodeableConcept.coding[0].code if obs.valueCodeableConcept else None
            assert value == values[item["status"]]
            patient, specimen = obs.contained
            assert patient.identifier[0].value == item["resident"]["id_number"]
            assert patient.identifier[0].system.endswith("prc_id")
            assert specimen.identifier[0].value == item["tube"]
            assert specimen.type.coding[0].code == ("pooled" if item["pooled"] else "single")
            assert obs.subject.reference == "#patient"


class TestAudit:
    async def test_every_read_is_audited_without_personal_data(
        self, scene, db_session: AsyncSession
    ) -> None:
        platform = await platform_token(scene)
        await scene.fill(scene.barcodes["P1"][0], range(4))
        first = await scene.client.get("/feed/results", params={"limit": 3}, headers=platform)
        cursor = first.json()["next_cursor"]
        await scene.client.get("/feed/results.fhir", params={"after": cursor}, headers=platform)
        rows = (
            await db_session.execute(
                text(
                    "SELECT role, token_id, action, subject, detail::text AS detail"
                    " FROM audit_log WHERE subject = 'feed' ORDER BY id"
                )
            )
        ).all()
        assert [(r.role, r.action) for r in rows] == [
            ("platform", "feed-read:json"),
            ("platform", "feed-read:fhir"),
        ]
        assert all(r.token_id is not None for r in rows)
        assert '"rows": 3' in rows[0].detail and '"after": 0' in rows[0].detail
        assert f'"after": {cursor}' in rows[1].detail and '"rows": 1' in rows[1].detail
        for row in rows:
            for secret in (*scene.ids, *scene.names):
                assert secret not in row.detail


class TestExactlyOnce:
    """Exactly-once from any cursor while writers commit concurrently: a polling reader
    sees every change once, in seq order, and what it saw equals a full read afterwards;
    the last standing fed for each person is what the resident query says (the SQL
    rules of the sequencer against pooling/standing.py's)."""

    async def test_a_polling_reader_sees_every_change_once_while_writers_commit(
        self, committed_client, make_scene
    ) -> None:
        scene = await make_scene(committed_client).build()
        platform = await platform_token(scene)
        polled: list[dict[str, Any]] = []
        writing = True

        async def reader() -> None:
            after = 0
            while True:
                done = not writing
                r = await committed_client.get(
                    "/feed/results", params={"after": after, "limit": 7}, headers=platform
                )
                assert r.status_code == 200, r.text
                page = r.json()
                polled.extend(page["items"])
                after = int(page["next_cursor"])
                if done and not page["items"]:
                    return
                await asyncio.sleep(0.005)

        async def point(who: str, people: range, box: str, lab: str, cts: str) -> None:
            tube = scene.barcodes[who][0]
            for i in people:
                r = await scene.sample(tube, scene.codes[i], who)
                assert r.status_code == 201, r.text
            await scene.ship([tube], box, lab=lab, who=who)
            await scene.upload_lis([f"A3,{tube},{cts}"], f"PL-{who}", lab=lab)

        async def writers() -> None:
            nonlocal writing
            try:
                await asyncio.gather(
                    point("P1", range(0, 10), "B1", "L1", NEG),
                    point("P2", range(10, 20), "B2", "L2", POS),
                    point("Q1", range(20, 30), "B3", "L1", NEG),
                )
                # two of the positive pool's people come back for their single re-test
                single = scene.barcodes["P2"][1]
                for i in (10, 11):
                    r = await scene.sample(single, scene.codes[i], "P2", kind="single")
                    assert r.status_code == 201, r.text
                    await scene.ship([single], f"BS{i}", lab="L2", who="P2")
                    await scene.upload_lis([f"A3,{single},{NEG}"], f"PLS{i}", lab="L2")
                    single = scene.barcodes["P2"][2]
            finally:
                writing = False

        await asyncio.gather(reader(), writers())

        seqs = [item["seq"] for item in polled]
        assert seqs == sorted(seqs) and len(seqs) == len(set(seqs)), "repeated or out of order"
        full, _ = await read_all(committed_client, platform)
        assert polled == full, "the polling reader and a full read afterwards disagree"

        last: dict[str, dict[str, Any]] = {}
        for item in full:
            last[item["resident"]["id_number"]] = item
        assert len(last) == 30
        for person in range(30):
            assert last[scene.ids[person]]["status"] == await scene.status_of(person), person
        assert last[scene.ids[10]]["status"] == "negative"
        assert last[scene.ids[12]]["status"] == "retest"
