"""Boxes from sampling point to lab: pack, dispatch, receive."""

from __future__ import annotations


async def sealed_tubes(scene, n, who="P1", start=0):
    tubes = scene.barcodes[who][start : start + n]
    for k, tube in enumerate(tubes, start=start):
        # two people per tube, nobody in two pool tubes of the round (already-sampled)
        await scene.fill(tube, range(k * 2, k * 2 + 2), who=who)
        await scene.post(f"/rounds/{scene.round_id}/tubes/{tube}/seal", None, who)
    return tubes


async def tube_state(scene, tube):
    r = await scene.client.get(
        f"/rounds/{scene.round_id}/tubes/{tube}", headers=scene.tokens["admin"]
    )
    return r.json()["state"]


class TestPacking:
    async def test_sealed_tubes_pack_into_a_box(self, scene):
        tubes = await sealed_tubes(scene, 3)
        r = await scene.post("/boxes", {"barcode": "BOX-1", "lab": "L1", "tubes": tubes}, "P1")
        assert r.status_code == 201, r.text
        assert r.json()["tubes"] == sorted(tubes)
        assert r.json()["state"] == "packed"
        assert await tube_state(scene, tubes[0]) == "packed"

    async def test_an_open_tube_cannot_be_packed(self, scene):
        tube = scene.barcodes["P1"][0]
        await scene.fill(tube, range(2))
        r = await scene.post("/boxes", {"barcode": "BOX-1", "lab": "L1", "tubes": [tube]}, "P1")
        assert (r.status_code, r.json()["type"]) == (409, "tube-not-sealed")
        assert tube in r.json()["detail"]

    async def test_a_tube_is_in_one_box_at_a_time(self, scene):
        tubes = await sealed_tubes(scene, 2)
        await scene.ok("/boxes", {"barcode": "BOX-1", "lab": "L1", "tubes": tubes}, "P1")
        r = await scene.post("/boxes", {"barcode": "BOX-2", "lab": "L1", "tubes": tubes[:1]}, "P1")
        assert (r.status_code, r.json()["type"]) == (409, "tube-in-box")

    async def test_a_box_code_in_use_cannot_be_packed_again(self, scene):
        tubes = await sealed_tubes(scene, 2)
        await scene.ok("/boxes", {"barcode": "BOX-1", "lab": "L1", "tubes": tubes[:1]}, "P1")
        r = await scene.post("/boxes", {"barcode": "BOX-1", "lab": "L1", "tubes": tubes[1:]}, "P1")
        assert (r.status_code, r.json()["type"]) == (409, "duplicate")

    async def test_a_sampler_packs_only_its_own_points_tubes(self, scene):
        tubes = await sealed_tubes(scene, 1)
        r = await scene.post("/boxes", {"barcode": "BOX-1", "lab": "L1", "tubes": tubes}, "P2")
        assert (r.status_code, r.json()["type"]) == (403, "forbidden")

    async def test_a_misread_tube_barcode_is_named(self, scene):
        r = await scene.post(
            "/boxes", {"barcode": "BOX-1", "lab": "L1", "tubes": ["12345678901234"]}, "P1"
        )
        assert (r.status_code, r.json()["type"]) == (422, "bad-barcode")
        assert r.json()["errors"][0]["loc"] == ["body", "tubes", 0]


class TestDispatchAndReceipt:
    async def test_a_dispatched_box_is_received_whole_by_its_lab(self, scene):
        tubes = await sealed_tubes(scene, 3)
        await scene.ok("/boxes", {"barcode": "BOX-1", "lab": "L1", "tubes": tubes}, "P1")
        dispatched = await scene.ok("/boxes/BOX-1/dispatch", None, "P1")
        assert dispatched["state"] == "in_transit"
        assert await tube_state(scene, tubes[0]) == "in_transit"
        again = await scene.ok("/boxes/BOX-1/dispatch", None, "P1")
        assert again["dispatched_at"] == dispatched["dispatched_at"]
        receipt = await scene.ok("/boxes/BOX-1/receive", {}, "L1")
        assert receipt == {
            "expected": 3,
            "received": 3,
            "missing": [],
            "unexpected": [],
            "taken_in": [],
            "rejected": [],
            "results_applied": 0,
        }
        assert await tube_state(scene, tubes[2]) == "received"

    async def test_the_lab_scan_names_missing_and_unexpected_tubes(self, scene):
        tubes = await sealed_tubes(scene, 3)
        stray = (await sealed_tubes(scene, 1, start=5))[0]
        await scene.ok("/boxes", {"barcode": "BOX-1", "lab": "L1", "tubes": tubes}, "P1")
        await scene.ok("/boxes/BOX-1/dispatch", None, "P1")
        receipt = await scene.ok(
            "/boxes/BOX-1/receive", {"tubes_scanned": [tubes[0], tubes[2], stray]}, "L1"
        )
        assert receipt == {
            "expected": 3,
            "received": 2,
            "missing": [tubes[1]],
            "unexpected": [stray],
            "taken_in": [],
            "rejected": [],
            "results_applied": 0,
        }
        assert await tube_state(scene, tubes[1]) == "in_transit"
        assert await tube_state(scene, stray) == "sealed"

    async def test_a_late_scan_of_a_missing_tube_is_accepted(self, scene):
        tubes = await sealed_tubes(scene, 2)
        await scene.ok("/boxes", {"barcode": "BOX-1", "lab": "L1", "tubes": tubes}, "P1")
        await scene.ok("/boxes/BOX-1/receive", {"tubes_scanned": tubes[:1]}, "L1")
        late = await scene.ok("/boxes/BOX-1/receive", {"tubes_scanned": tubes[1:]}, "L1")
        assert late == {
            "expected": 2,
            "received": 2,
            "missing": [],
            "unexpected": [],
            "taken_in": [],
            "rejected": [],
            "results_applied": 0,
        }
        assert await tube_state(scene, tubes[1]) == "received"

    async def test_another_lab_cannot_receive_the_box(self, scene):
        tubes = await sealed_tubes(scene, 1)
        await scene.ok("/boxes", {"barcode": "BOX-1", "lab": "L1", "tubes": tubes}, "P1")
        r = await scene.post("/boxes/BOX-1/receive", {}, "L2")
        assert (r.status_code, r.json()["type"]) == (403, "forbidden")

    async def test_a_sampler_cannot_receive_and_a_lab_cannot_dispatch(self, scene):
        tubes = await sealed_tubes(scene, 1)
        await scene.ok("/boxes", {"barcode": "BOX-1", "lab": "L1", "tubes": tubes}, "P1")
        assert (await scene.post("/boxes/BOX-1/receive", {}, "P1")).status_code == 403
        assert (await scene.post("/boxes/BOX-1/dispatch", None, "L1")).status_code == 403

    async def test_a_received_box_code_can_be_used_again(self, scene):
        tubes = await sealed_tubes(scene, 2)
        await scene.ok("/boxes", {"barcode": "BOX-1", "lab": "L1", "tubes": tubes[:1]}, "P1")
        await scene.ok("/boxes/BOX-1/receive", {}, "L1")
        reused = await scene.post(
            "/boxes", {"barcode": "BOX-1", "lab": "L2", "tubes": tubes[1:]}, "P1"
        )
        assert reused.status_code == 201
        assert reused.json()["lab"] == "L2"
