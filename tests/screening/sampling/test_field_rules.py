"""The sampling station's rules in the field (issue 11, API.md "Sampling in the field"),
through HTTP on the real database: misread resident codes, the masked name in the
scan answer, the tube check before the first resident, needs-single, already-sampled,
the round close, and what the online scan and the sync batch answer alike."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from pooling.barcodes import format_barcode, parse_barcode
from screening.residents.codes import CODE_ALPHABET, new_resident_code
from tests.screening.retests.test_depooling import INVALID, cases, positive_pool


def masked(scene, person):
    name = scene.names[person]
    return name[0] + "*" + name[-1]


def sample(event_id, tube, code, **extra):
    return {
        "event_id": event_id,
        "type": "sample",
        "tube": tube,
        "resident_code": code,
        "at": datetime.now(UTC).isoformat(),
        **extra,
    }


async def sync(scene, events, who="P1"):
    r = await scene.post(f"/rounds/{scene.round_id}/sync", {"events": events}, who)
    assert r.status_code == 200, r.text
    return r.json()


def rejected(body):
    return {x["event_id"]: x["type"] for x in body["rejected"]}


def misread(code):
    """``code`` with its last-but-one character replaced: the check character catches it."""
    i = CODE_ALPHABET.index(code[-2])
    return code[:-2] + CODE_ALPHABET[(i + 1) % len(CODE_ALPHABET)] + code[-1]


async def tube_count(db_session, tube):
    return await db_session.scalar(
        text("SELECT count FROM tubes WHERE serial = :s"), {"s": parse_barcode(tube)}
    )


class TestResidentCodes:
    async def test_a_misread_code_is_refused_online_before_anything_is_stored(
        self, scene, db_session
    ):
        tube = scene.barcodes["P1"][0]
        r = await scene.sample(tube, misread(scene.codes[0]))
        assert (r.status_code, r.json()["type"]) == (422, "bad-resident-code")
        assert r.json()["errors"][0]["loc"] == ["body", "resident_code"]
        assert await tube_count(db_session, tube) is None

    async def test_a_misread_code_is_rejected_alone_in_a_batch(self, scene):
        tube = scene.barcodes["P1"][0]
        body = await sync(
            scene,
            [sample("bad", tube, misread(scene.codes[0])), sample("ok", tube, scene.codes[1])],
        )
        assert body["applied"] == 1 and rejected(body) == {"bad": "bad-resident-code"}

    async def test_a_code_typed_in_lower_case_is_the_same_code(self, scene):
        r = await scene.sample(scene.barcodes["P1"][0], scene.codes[0].lower())
        assert r.status_code == 201, r.text

    async def test_a_well_formed_code_nobody_holds_is_unknown(self, scene):
        r = await scene.sample(scene.barcodes["P1"][0], new_resident_code())
        assert (r.status_code, r.json()["type"]) == (404, "unknown-resident")


class TestScanAnswer:
    async def test_the_answer_names_the_person_masked(self, scene):
        r = await scene.sample(scene.barcodes["P1"][0], scene.codes[3])
        assert r.json()["resident"] == {"name_masked": masked(scene, 3)}
        assert scene.names[3] not in r.text

    async def test_a_replayed_event_names_the_person_too(self, scene):
        tube = scene.barcodes["P1"][0]
        first = await scene.sample(tube, scene.codes[3], event_id="e-1")
        again = await scene.sample(tube, scene.codes[3], event_id="e-1")
        assert again.json() == first.json()
        assert again.json()["resident"] == {"name_masked": masked(scene, 3)}


class TestTubeScan:
    async def test_an_issued_tube_not_used_yet_is_unused_for_its_own_point(self, scene):
        tube = scene.barcodes["Q1"][0]
        r = await scene.client.get(
            f"/rounds/{scene.round_id}/tubes/{tube}", headers=scene.tokens["Q1"]
        )
        assert r.status_code == 200, r.text
        body = r.json()
        assert (body["state"], body["count"], body["kind"], body["members"]) == (
            "unused",
            0,
            None,
            [],
        )
        assert (body["capacity"], body["sampling_point"]) == (20, "Q1")

    async def test_another_points_tube_is_refused_at_the_tube_scan(self, scene):
        used, unused = scene.barcodes["P2"][:2]
        await scene.fill(used, [0], who="P2")
        for tube in (used, unused):
            r = await scene.client.get(
                f"/rounds/{scene.round_id}/tubes/{tube}", headers=scene.tokens["P1"]
            )
            assert (r.status_code, r.json()["type"]) == (403, "forbidden")

    async def test_a_tube_not_issued_for_this_round_is_refused_at_the_tube_scan(self, scene):
        stray = format_barcode(parse_barcode(scene.barcodes["Q1"][-1]) + 1)
        r = await scene.client.get(
            f"/rounds/{scene.round_id}/tubes/{stray}", headers=scene.tokens["P1"]
        )
        assert (r.status_code, r.json()["type"]) == (422, "bad-barcode")

    def test_the_openapi_document_describes_the_tube_check(self, app):
        doc = app.openapi()
        [path] = [p for p in doc["paths"] if p.endswith("/rounds/{round_id}/tubes/{tube}")]
        answers = doc["paths"][path]["get"]["responses"]
        assert {"200", "403", "422"} <= set(answers)
        assert "unused" in str(doc["components"]["schemas"]["TubeRead"])


class TestNeedsSingle:
    async def test_a_recalled_person_is_refused_a_pool_tube_online_and_in_sync(self, scene):
        await positive_pool(scene, people=(0, 1))
        pool = scene.barcodes["P1"][5]
        r = await scene.sample(pool, scene.codes[0])
        assert (r.status_code, r.json()["type"]) == (409, "needs-single")
        body = await sync(scene, [sample("s1", pool, scene.codes[1])])
        assert rejected(body) == {"s1": "needs-single"}

    async def test_into_a_single_tube_the_recalled_person_links_as_before(self, scene):
        await positive_pool(scene, people=(0,))
        r = await scene.sample(scene.barcodes["P1"][6], scene.codes[0], kind="single")
        assert r.status_code == 201, r.text
        [case] = await cases(scene)
        assert case["members"][0]["status"] == "resampled"

    async def test_needs_single_wins_over_already_sampled(self, scene):
        # person 0 is in the positive pool (a live pool tube of this round) and recalled
        await positive_pool(scene, people=(0,))
        r = await scene.sample(scene.barcodes["P1"][7], scene.codes[0])
        assert r.json()["type"] == "needs-single"
        body = await sync(scene, [sample("x", scene.barcodes["P1"][7], scene.codes[0])])
        assert rejected(body) == {"x": "needs-single"}


class TestAlreadySampled:
    async def test_a_person_in_another_live_pool_tube_is_refused_with_where_and_when(self, scene):
        first, second = scene.barcodes["P1"][:2]
        await scene.fill(first, [4])
        r = await scene.sample(second, scene.codes[4])
        assert (r.status_code, r.json()["type"]) == (409, "already-sampled")
        earlier = r.json()["earlier"]
        assert (earlier["tube"], earlier["sampling_point"]) == (first, "P1")
        assert datetime.fromisoformat(earlier["sampled_at"]) <= datetime.now(UTC)
        assert first in r.json()["detail"] and "P1" in r.json()["detail"]

    async def test_the_same_in_a_batch_also_between_two_events_of_the_batch(self, scene):
        first, second, third = scene.barcodes["P1"][:3]
        await scene.fill(first, [4])
        body = await sync(
            scene,
            [
                sample("a", second, scene.codes[4]),
                sample("b", second, scene.codes[5]),
                sample("c", third, scene.codes[5]),
            ],
        )
        assert rejected(body) == {"a": "already-sampled", "c": "already-sampled"}
        by_id = {x["event_id"]: x for x in body["rejected"]}
        assert by_id["a"]["earlier"]["tube"] == first
        assert by_id["c"]["earlier"]["tube"] == second

    async def test_a_pool_whose_result_is_invalid_lets_the_person_be_pooled_again(self, scene):
        await positive_pool(scene, people=(0, 1), cts=INVALID)
        r = await scene.sample(scene.barcodes["P1"][8], scene.codes[0])
        assert r.status_code == 201, r.text

    async def test_a_person_in_the_same_tube_twice_is_already_in_tube(self, scene):
        tube = scene.barcodes["P1"][0]
        await scene.fill(tube, [4])
        r = await scene.sample(tube, scene.codes[4])
        assert r.json()["type"] == "already-in-tube"


class TestRoundClose:
    async def close(self, scene):
        closed = await scene.ok(f"/rounds/{scene.round_id}/close", None)
        return datetime.fromisoformat(str(closed["closed_at"]))

    async def test_swabs_taken_before_the_close_still_land_later_ones_do_not(self, scene):
        tube = scene.barcodes["P1"][0]
        await scene.fill(tube, [0])
        closed_at = await self.close(scene)
        before = (closed_at - timedelta(minutes=5)).isoformat()
        body = await sync(
            scene,
            [
                sample("before", tube, scene.codes[1], at=before),
                sample("after", tube, scene.codes[2]),
            ],
        )
        assert body["applied"] == 1 and rejected(body) == {"after": "round-closed"}
        online = await scene.sample(tube, scene.codes[3])
        assert (online.status_code, online.json()["type"]) == (409, "round-closed")

    async def test_a_partly_filled_tube_is_sealed_and_boxed_after_the_close(self, scene):
        tube, other = scene.barcodes["P1"][:2]
        await scene.fill(tube, [0, 1])
        await scene.fill(other, [2])
        await self.close(scene)
        sealed = await scene.post(f"/rounds/{scene.round_id}/tubes/{tube}/seal", None, "P1")
        assert sealed.status_code == 200, sealed.text
        body = await sync(scene, [{"event_id": "s", "type": "seal", "tube": other}])
        assert body["applied"] == 1, body
        await scene.ok("/boxes", {"barcode": "BOX-LATE", "lab": "L1", "tubes": [tube, other]}, "P1")

    async def test_a_single_re_test_goes_on_after_the_close(self, scene):
        await positive_pool(scene, people=(0, 1))
        await self.close(scene)
        r = await scene.sample(scene.barcodes["P1"][9], scene.codes[0], kind="single")
        assert r.status_code == 201, r.text
        body = await sync(
            scene, [sample("re", scene.barcodes["P1"][10], scene.codes[1], kind="single")]
        )
        assert body["applied"] == 1, body
        # a single tube for someone with no case is a new swab: refused after the close
        late = await scene.sample(scene.barcodes["P1"][11], scene.codes[7], kind="single")
        assert late.json()["type"] == "round-closed"
