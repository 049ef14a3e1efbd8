"""The standing rules of API.md v1.1 ("Lab in the field"), each read back through the
resident query (``POST /results/query``) and the progress figures: a pool of one is a
single, a suspicious single is a re-test, ``confirmed_positive`` counts singles whose
latest result is positive, a pool's later negative re-run keeps its case's members at
``retest``, and single re-swabs taken before a case opens are linked when it opens."""

from __future__ import annotations

from tests.screening.retests.test_depooling import (
    NEGATIVE,
    POSITIVE,
    SUSPICIOUS,
    cases,
    positive_pool,
    singles,
)


async def progress(scene, round_id=None):
    r = await scene.client.get(
        f"/rounds/{round_id or scene.round_id}/progress", headers=scene.tokens["admin"]
    )
    assert r.status_code == 200, r.text
    return r.json()


async def isolation_round(scene):
    """A second round at ``pool_size`` 1 over D1 (an isolation point), barcodes for P1."""
    rnd = await scene.ok(
        "/rounds",
        {
            "name": "隔离点轮次",
            "pool_size": 1,
            "districts": ["D1"],
            "starts_at": "2026-11-22T06:00:00+08:00",
            "deadline": "2026-11-23T06:00:00+08:00",
        },
    )
    issued = await scene.ok(f"/rounds/{rnd['id']}/barcodes", {"sampling_point": "P1", "count": 5})
    listing = await scene.client.get(
        f"/rounds/{rnd['id']}/barcodes/{issued['range_id']}", headers=scene.tokens["admin"]
    )
    return int(str(rnd["id"])), listing.json()["barcodes"]


class TestPoolOfOne:
    async def test_a_positive_pool_of_one_is_a_confirmed_positive_without_a_case(self, scene):
        round_id, tubes = await isolation_round(scene)
        r = await scene.post(
            f"/rounds/{round_id}/samples", {"tube": tubes[0], "resident_code": scene.codes[4]}, "P1"
        )
        assert r.status_code == 201 and r.json()["full"] is True, r.text
        await scene.ship([tubes[0]], box="ISO-1", round_id=round_id)
        await scene.upload_lis([f"A3,{tubes[0]},{POSITIVE}"], "ISO-PLATE")

        listed = await scene.client.get(
            f"/rounds/{round_id}/retests", headers=scene.tokens["admin"]
        )
        assert listed.json()["items"] == []
        assert await scene.status_of(4) == "positive"
        assert (await progress(scene, round_id))["confirmed_positive"] == 1

    async def test_a_pool_of_one_answers_an_open_case_like_a_single(self, scene):
        await positive_pool(scene, people=(0, 1))
        round_id, tubes = await isolation_round(scene)
        for k, person in enumerate((0, 1)):
            r = await scene.post(
                f"/rounds/{round_id}/samples",
                {"tube": tubes[k], "resident_code": scene.codes[person]},
                "P1",
            )
            assert r.status_code == 201, r.text
        await scene.ship(tubes[:2], box="ISO-2", round_id=round_id)
        await scene.upload_lis(
            [f"A3,{tubes[0]},{NEGATIVE}", f"A4,{tubes[1]},{NEGATIVE}"], "ISO-PLATE-2"
        )
        [case] = await cases(scene)
        assert case["status"] == "resolved" and case["discordant"] is True
        assert {m["single_tube"] for m in case["members"]} == set(tubes[:2])


class TestSuspiciousSingle:
    async def test_a_suspicious_single_reads_retest_and_is_not_confirmed(self, scene):
        [tube] = await singles(scene, [5], first_tube=0)
        await scene.upload_lis([f"A3,{tube},{SUSPICIOUS}"], "SINGLES-1")
        assert await scene.status_of(5) == "retest"
        figures = await progress(scene)
        assert figures["confirmed_positive"] == 0
        assert figures["results"]["suspicious"] == 1

    async def test_its_re_test_positive_confirms_and_negative_releases(self, scene):
        [first, second] = await singles(scene, [5, 6], first_tube=0)
        await scene.upload_lis(
            [f"A3,{first},{SUSPICIOUS}", f"A4,{second},{SUSPICIOUS}"], "SINGLES-1"
        )
        [again5, again6] = await singles(scene, [5, 6], first_tube=2, box="AGAIN")
        await scene.upload_lis([f"A3,{again5},{POSITIVE}", f"A4,{again6},{NEGATIVE}"], "SINGLES-2")
        assert await scene.status_of(5) == "positive"
        assert await scene.status_of(6) == "negative"
        assert (await progress(scene))["confirmed_positive"] == 1

    async def test_a_confirmed_single_re_run_suspicious_is_no_longer_counted(self, scene):
        [tube] = await singles(scene, [5], first_tube=0)
        await scene.upload_lis([f"A3,{tube},{POSITIVE}"], "SINGLES-1")
        assert (await progress(scene))["confirmed_positive"] == 1
        await scene.upload_lis([f"A3,{tube},{SUSPICIOUS}"], "SINGLES-1")
        assert (await progress(scene))["confirmed_positive"] == 0
        assert await scene.status_of(5) == "retest"

    async def test_a_members_suspicious_single_recalls_them_again(self, scene):
        await positive_pool(scene, people=(0, 1))
        [t0, t1] = await singles(scene, [0, 1])
        await scene.upload_lis([f"A3,{t0},{SUSPICIOUS}", f"A4,{t1},{NEGATIVE}"], "SINGLES-1")
        [case] = await cases(scene)
        status = {m["resident_code"]: m["status"] for m in case["members"]}
        assert status == {scene.codes[0]: "to-recall", scene.codes[1]: "negative"}
        assert case["status"] == "open"
        assert await scene.status_of(0) == "retest"


class TestPoolReRunNegative:
    async def test_members_stay_retest_until_their_case_resolves(self, scene):
        tube = await positive_pool(scene, people=(0, 1))
        await scene.upload_lis([f"A3,{tube},{NEGATIVE}"], "PL1-AGAIN")
        [case] = await cases(scene)
        assert case["status"] == "open"
        assert await scene.status_of(0) == "retest"
        assert await scene.status_of(1) == "retest"

        [t0, t1] = await singles(scene, [0, 1])
        await scene.upload_lis([f"A3,{t0},{NEGATIVE}", f"A4,{t1},{NEGATIVE}"], "SINGLES-1")
        assert await scene.status_of(0) == "negative"
        [case] = await cases(scene)
        assert case["status"] == "resolved"


class TestEarlierReSwabs:
    async def test_a_single_taken_before_the_case_opens_is_linked_when_it_opens(self, scene):
        pool = scene.barcodes["P1"][0]
        await scene.fill(pool, [0, 1, 2])
        await scene.ship([pool], box="BOX-0")
        # the lab phoned: person 0 is swabbed alone before the pool result is uploaded
        [single] = await singles(scene, [0])
        await scene.upload_lis([f"A3,{pool},{POSITIVE}"], "PL1")
        [case] = await cases(scene)
        member = next(m for m in case["members"] if m["resident_code"] == scene.codes[0])
        assert (member["status"], member["single_tube"]) == ("resampled", single)
        assert await scene.status_of(0) == "retest"

        await scene.upload_lis([f"A3,{single},{NEGATIVE}"], "SINGLES-1")
        [case] = await cases(scene)
        member = next(m for m in case["members"] if m["resident_code"] == scene.codes[0])
        assert member["status"] == "negative"
        assert await scene.status_of(0) == "negative"

    async def test_an_earlier_single_already_resulted_answers_at_once(self, scene):
        pool = scene.barcodes["P1"][0]
        await scene.fill(pool, [0, 1])
        await scene.ship([pool], box="BOX-0")
        [s0, s1] = await singles(scene, [0, 1])
        await scene.upload_lis([f"A3,{s0},{NEGATIVE}", f"A4,{s1},{NEGATIVE}"], "SINGLES-1")
        await scene.upload_lis([f"A3,{pool},{POSITIVE}"], "PL1")
        [case] = await cases(scene)
        assert {m["status"] for m in case["members"]} == {"negative"}
        assert case["status"] == "resolved" and case["discordant"] is True
        assert await scene.status_of(1) == "negative"

    async def test_a_single_taken_before_the_pool_itself_is_not_linked(self, scene):
        single = scene.barcodes["P1"][10]
        event = {
            "event_id": "early-single",
            "at": "2026-11-22T08:00:00+08:00",
            "type": "sample",
            "tube": single,
            "resident_code": scene.codes[0],
            "kind": "single",
        }
        synced = await scene.ok(f"/rounds/{scene.round_id}/sync", {"events": [event]}, "P1")
        assert synced["applied"] == 1, synced
        await scene.ship([single], box="SINGLES")
        pool = scene.barcodes["P1"][0]
        await scene.fill(pool, [0, 1])
        await scene.ship([pool], box="BOX-0")
        await scene.upload_lis([f"A3,{single},{NEGATIVE}"], "SINGLES-1")
        await scene.upload_lis([f"A3,{pool},{POSITIVE}"], "PL1")
        [case] = await cases(scene)
        assert {m["status"] for m in case["members"]} == {"to-recall"}
