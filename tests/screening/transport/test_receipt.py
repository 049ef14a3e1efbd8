"""The lab's receipt in the field (API.md v1.1 "Lab in the field"; issue 16, box
reuse): rejected tubes recall their people, tubes from another box are taken into
custody, receipt never invents a tube nobody scanned, and a reused box barcode never
strands the late tubes of its last trip."""

from __future__ import annotations

from tests.screening.results.test_field_events import tube
from tests.screening.transport.test_boxes import sealed_tubes


async def boxed(scene, tubes, box, lab="L1", who="P1", dispatch=True):
    await scene.ok("/boxes", {"barcode": box, "lab": lab, "tubes": tubes}, who)
    if dispatch:
        await scene.ok(f"/boxes/{box}/dispatch", None, who)


async def status_of(scene, person):
    return await scene.status_of(person)


class TestRejected:
    async def test_a_leaking_tube_is_rejected_and_its_people_recalled(self, scene):
        tubes = await sealed_tubes(scene, 2)  # tube k holds people 2k and 2k+1
        await boxed(scene, tubes, "BOX-1")
        receipt = await scene.ok(
            "/boxes/BOX-1/receive",
            {"tubes_scanned": tubes, "rejected": [{"tube": tubes[1], "reason": "leaking"}]},
            "L1",
        )
        assert (receipt["expected"], receipt["received"], receipt["missing"]) == (2, 1, [])
        [rejected] = receipt["rejected"]
        assert (rejected["tube"], rejected["reason"], rejected["sampling_point"]) == (
            tubes[1],
            "leaking",
            "P1",
        )
        assert sorted(m["resident_code"] for m in rejected["members"]) == sorted(scene.codes[2:4])
        assert {m["status"] for m in rejected["members"]} == {"to-recall"}
        assert all("*" in m["name_masked"] for m in rejected["members"])
        assert scene.names[2] not in str(receipt) and scene.ids[2] not in str(receipt)
        assert (await tube(scene, tubes[1]))["state"] == "rejected"
        assert await status_of(scene, 2) == "invalid"
        assert await status_of(scene, 0) == "pending"

    async def test_the_recall_list_shows_rejected_tubes_to_their_point(self, scene):
        tubes = await sealed_tubes(scene, 1)
        await boxed(scene, tubes, "BOX-1")
        await scene.ok(
            "/boxes/BOX-1/receive", {"rejected": [{"tube": tubes[0], "reason": "damaged"}]}, "L1"
        )
        path = f"/rounds/{scene.round_id}/rejected-tubes"
        own = await scene.client.get(path, headers=scene.tokens["P1"])
        [item] = own.json()["items"]
        assert (item["tube"], item["reason"], len(item["members"])) == (tubes[0], "damaged", 2)
        other = await scene.client.get(path, headers=scene.tokens["P2"])
        assert other.json()["items"] == []
        # person 0 is swabbed again: the list says so
        again = scene.barcodes["P1"][10]
        await scene.fill(again, [0])
        listed = (await scene.client.get(path, headers=scene.tokens["admin"])).json()["items"]
        status = {m["resident_code"]: m["status"] for m in listed[0]["members"]}
        assert status == {scene.codes[0]: "resampled", scene.codes[1]: "to-recall"}

    async def test_a_rejected_single_recalls_its_case_member_again(self, scene):
        pool = scene.barcodes["P1"][0]
        await scene.fill(pool, [0, 1])
        await scene.ship([pool], box="BOX-0")
        await scene.upload_lis([f"A3,{pool},30,31,26"], "PL1")
        single = scene.barcodes["P1"][10]
        await scene.fill(single, [0], kind="single")
        await scene.post(f"/rounds/{scene.round_id}/tubes/{single}/seal", None, "P1")
        await boxed(scene, [single], "BOX-S")
        await scene.ok(
            "/boxes/BOX-S/receive",
            {"rejected": [{"tube": single, "reason": "insufficient"}]},
            "L1",
        )
        cases = await scene.client.get(
            f"/rounds/{scene.round_id}/retests", headers=scene.tokens["admin"]
        )
        [case] = cases.json()["items"]
        member = next(m for m in case["members"] if m["resident_code"] == scene.codes[0])
        assert member["status"] == "invalid"
        assert await status_of(scene, 0) == "invalid"

    async def test_a_rejection_must_name_a_known_tube_and_a_listed_reason(self, scene):
        tubes = await sealed_tubes(scene, 1)
        await boxed(scene, tubes, "BOX-1")
        bad_reason = await scene.post(
            "/boxes/BOX-1/receive", {"rejected": [{"tube": tubes[0], "reason": "lost"}]}, "L1"
        )
        assert (bad_reason.status_code, bad_reason.json()["type"]) == (422, "invalid-request")
        unknown = await scene.post(
            "/boxes/BOX-1/receive",
            {"rejected": [{"tube": scene.barcodes["P1"][19], "reason": "other"}]},
            "L1",
        )
        assert unknown.status_code == 422 and scene.barcodes["P1"][19] in unknown.json()["detail"]
        assert (await tube(scene, tubes[0]))["state"] == "in_transit"

    async def test_rows_for_a_rejected_tube_are_refused_with_the_reason(self, scene):
        tubes = await sealed_tubes(scene, 1)
        await boxed(scene, tubes, "BOX-1")
        await scene.ok(
            "/boxes/BOX-1/receive", {"rejected": [{"tube": tubes[0], "reason": "leaking"}]}, "L1"
        )
        lines = [
            "plate,well,sample,role,ORF1ab,N,IC",
            "PL1,A1,NTC,ntc,,,",
            "PL1,A2,PC,pc,28,29,27",
            f"PL1,A3,{tubes[0]},sample,,,27",
        ]
        r = await scene.client.post(
            "/labs/L1/results",
            headers=scene.tokens["L1"],
            files={"file": ("r.csv", "\n".join(lines).encode(), "text/csv")},
        )
        [row] = r.json()["rejected"]
        assert (row["line"], row["type"]) == (4, "tube-rejected")


class TestCustodyAndInvention:
    async def test_a_tube_from_another_box_is_taken_into_custody(self, scene):
        mine = await sealed_tubes(scene, 1)
        stray = await sealed_tubes(scene, 1, start=3)
        await boxed(scene, mine, "BOX-1")
        await boxed(scene, stray, "BOX-2", lab="L2")
        receipt = await scene.ok("/boxes/BOX-1/receive", {"tubes_scanned": mine + stray}, "L1")
        assert receipt["taken_in"] == stray and receipt["unexpected"] == stray
        state = await tube(scene, stray[0])
        assert state["state"] == "received"
        lines = [
            "plate,well,sample,role,ORF1ab,N,IC",
            "PL1,A1,NTC,ntc,,,",
            "PL1,A2,PC,pc,28,29,27",
            f"PL1,A3,{stray[0]},sample,,,27",
        ]
        r = await scene.client.post(
            "/labs/L1/results",
            headers=scene.tokens["L1"],
            files={"file": ("r.csv", "\n".join(lines).encode(), "text/csv")},
        )
        assert r.json()["accepted"] == 3, r.text

    async def test_confirming_twice_with_nothing_scanned_invents_no_tube(self, scene):
        tubes = await sealed_tubes(scene, 2)
        await boxed(scene, tubes, "BOX-1")
        first = await scene.ok("/boxes/BOX-1/receive", {"tubes_scanned": tubes[:1]}, "L1")
        assert first["missing"] == tubes[1:]
        again = await scene.ok("/boxes/BOX-1/receive", {}, "L1")
        assert (again["received"], again["missing"]) == (1, tubes[1:])
        assert (await tube(scene, tubes[1]))["state"] == "in_transit"


class TestBoxReuse:
    async def test_a_box_with_tubes_still_on_the_road_cannot_be_packed_again(self, scene):
        first = await sealed_tubes(scene, 2)
        await boxed(scene, first, "BOX-1")
        await scene.ok("/boxes/BOX-1/receive", {"tubes_scanned": first[:1]}, "L1")
        more = await sealed_tubes(scene, 1, start=4)
        r = await scene.post("/boxes", {"barcode": "BOX-1", "lab": "L1", "tubes": more}, "P1")
        assert (r.status_code, r.json()["type"]) == (409, "duplicate")

    async def test_receipt_finds_the_box_sent_to_this_lab_not_a_newer_one(self, scene):
        first = await sealed_tubes(scene, 1)
        await boxed(scene, first, "BOX-1")
        await scene.ok("/boxes/BOX-1/receive", {}, "L1")
        second = await sealed_tubes(scene, 2, start=3)
        await boxed(scene, second, "BOX-1", lab="L2", dispatch=False)
        # L1 scans the old box again: it finds its own, received, box; the new one is untouched
        again = await scene.ok("/boxes/BOX-1/receive", {}, "L1")
        assert (again["expected"], again["received"]) == (1, 1)
        box = await scene.client.get("/boxes/BOX-1", headers=scene.tokens["admin"])
        assert box.json()["state"] == "packed" and box.json()["lab"] == "L2"
        received = await scene.ok("/boxes/BOX-1/receive", {"tubes_scanned": second}, "L2")
        assert (received["expected"], received["received"]) == (2, 2)
