"""Scanning swabs into tubes through POST /rounds/{id}/samples."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text
from stdnum.iso7064 import mod_11_10

from pooling.barcodes import format_barcode, parse_barcode
from screening.residents.codes import new_resident_code

UNKNOWN_CODE = new_resident_code()  # well formed, held by nobody


def _swapped(code: str) -> str:
    """The first swap of two neighbouring digits that the check digit catches (it
    catches about 98% of them: tests/pooling/test_barcodes.py)."""
    for p in range(len(code) - 1):
        swapped = code[:p] + code[p + 1] + code[p] + code[p + 2 :]
        if swapped != code and not mod_11_10.is_valid(swapped):
            return swapped
    raise AssertionError(f"no detectable swap in {code}")


class TestScanIntoTube:
    async def test_first_scan_opens_a_tube_at_the_round_pool_size(self, scene):
        r = await scene.sample(scene.barcodes["P1"][0], scene.codes[0])
        assert r.status_code == 201, r.text
        assert r.json() == {
            "tube": scene.barcodes["P1"][0],
            "kind": "pool",
            "count": 1,
            "capacity": 10,
            "full": False,
            "resident": {"name_masked": scene.names[0][0] + "*" + scene.names[0][-1]},
        }

    async def test_a_district_override_sets_the_capacity(self, scene):
        r = await scene.sample(scene.barcodes["Q1"][0], scene.codes[0], who="Q1")
        assert r.json()["capacity"] == 20

    async def test_a_single_tube_holds_one_person_and_seals_itself(self, scene):
        tube = scene.barcodes["P1"][0]
        r = await scene.sample(tube, scene.codes[0], kind="single")
        assert r.json() == {
            "tube": tube,
            "kind": "single",
            "count": 1,
            "capacity": 1,
            "full": True,
            "resident": {"name_masked": scene.names[0][0] + "*" + scene.names[0][-1]},
        }
        r = await scene.sample(tube, scene.codes[1], kind="single")
        assert (r.status_code, r.json()["type"]) == (409, "tube-full")

    async def test_the_tenth_scan_fills_and_seals_the_tube(self, scene):
        tube = scene.barcodes["P1"][0]
        await scene.fill(tube, range(9))
        r = await scene.sample(tube, scene.codes[9])
        assert r.json()["full"] is True and r.json()["count"] == 10
        state = await scene.client.get(
            f"/rounds/{scene.round_id}/tubes/{tube}", headers=scene.tokens["P1"]
        )
        assert state.json()["state"] == "sealed"
        assert state.json()["sealed_at"] is not None

    async def test_the_eleventh_scan_into_a_full_tube_is_refused(self, scene):
        tube = scene.barcodes["P1"][0]
        await scene.fill(tube, range(10))
        r = await scene.sample(tube, scene.codes[10])
        assert r.status_code == 409
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["type"] == "tube-full"

    async def test_the_same_person_twice_in_a_tube_is_refused_and_counts_once(self, scene):
        tube = scene.barcodes["P1"][0]
        await scene.fill(tube, range(3))
        r = await scene.sample(tube, scene.codes[1])
        assert (r.status_code, r.json()["type"]) == (409, "already-in-tube")
        state = await scene.client.get(
            f"/rounds/{scene.round_id}/tubes/{tube}", headers=scene.tokens["P1"]
        )
        assert state.json()["count"] == 3
        assert len(state.json()["members"]) == 3

    async def test_a_scan_into_a_sealed_tube_is_refused(self, scene):
        tube = scene.barcodes["P1"][0]
        await scene.fill(tube, range(2))
        sealed = await scene.post(f"/rounds/{scene.round_id}/tubes/{tube}/seal", None, "P1")
        assert sealed.json() == {"tube": tube, "count": 2}
        r = await scene.sample(tube, scene.codes[5])
        assert (r.status_code, r.json()["type"]) == (409, "tube-sealed")

    @pytest.mark.parametrize(
        "mangle",
        [
            lambda code: code[:-1] + str((int(code[-1]) + 1) % 10),  # check digit wrong
            lambda code: _swapped(code),  # two neighbouring digits swapped
            lambda code: code[:-1],  # one digit short
            lambda code: "A" + code[1:],  # a letter
        ],
    )
    async def test_a_misread_barcode_is_refused(self, scene, mangle):
        code = scene.barcodes["P1"][3]
        bad = mangle(code)
        assert bad != code
        r = await scene.sample(bad, scene.codes[0])
        assert (r.status_code, r.json()["type"]) == (422, "bad-barcode")
        assert r.json()["errors"][0]["loc"] == ["body", "tube"]

    async def test_a_barcode_not_issued_for_this_round_is_refused(self, scene):
        last = parse_barcode(scene.barcodes["Q1"][-1])
        r = await scene.sample(format_barcode(last + 1), scene.codes[0])
        assert (r.status_code, r.json()["type"]) == (422, "bad-barcode")
        assert "not issued" in r.json()["detail"]

    async def test_a_tube_of_an_earlier_round_is_refused_in_a_new_round(self, scene):
        tube = scene.barcodes["P1"][0]
        await scene.fill(tube, range(1))
        newer = await scene.ok(
            "/rounds",
            {
                "name": "第2轮",
                "pool_size": 10,
                "districts": ["D1"],
                "starts_at": "2026-11-24T06:00:00+08:00",
                "deadline": "2026-11-25T06:00:00+08:00",
            },
        )
        r = await scene.post(
            f"/rounds/{newer['id']}/samples", {"tube": tube, "resident_code": scene.codes[1]}, "P1"
        )
        assert (r.status_code, r.json()["type"]) == (422, "bad-barcode")

    async def test_an_unknown_resident_code_is_refused(self, scene):
        r = await scene.sample(scene.barcodes["P1"][0], UNKNOWN_CODE)
        assert (r.status_code, r.json()["type"]) == (404, "unknown-resident")

    async def test_a_closed_round_takes_no_more_pool_samples(self, scene):
        closed = await scene.post(f"/rounds/{scene.round_id}/close", None)
        assert closed.json()["status"] == "closed"
        r = await scene.sample(scene.barcodes["P1"][0], scene.codes[0])
        assert (r.status_code, r.json()["type"]) == (409, "round-closed")

    async def test_a_pool_scan_into_a_single_tube_is_refused(self, scene):
        tube = scene.barcodes["P1"][0]
        await scene.sample(tube, scene.codes[0], kind="single")
        r = await scene.sample(tube, scene.codes[1])
        assert r.status_code == 409
        assert r.json()["type"] in ("tube-full", "tube-kind-mismatch")

    async def test_a_tube_is_bound_to_the_sampling_point_not_the_home_address(self, scene):
        # the residents live in D1; Q1 is in D2
        tube = scene.barcodes["Q1"][0]
        await scene.fill(tube, range(2), who="Q1")
        r = await scene.client.get(
            f"/rounds/{scene.round_id}/tubes/{tube}", headers=scene.tokens["Q1"]
        )
        body = r.json()
        assert body["sampling_point"] == "Q1"
        assert body["sampling_point_address"] == "江南大道3号"

    async def test_a_tube_shows_its_members_masked(self, scene):
        tube = scene.barcodes["P1"][0]
        await scene.fill(tube, range(2))
        r = await scene.client.get(
            f"/rounds/{scene.round_id}/tubes/{tube}", headers=scene.tokens["P1"]
        )
        members = r.json()["members"]
        assert [m["resident_code"] for m in members] == scene.codes[:2]
        first = members[0]
        assert first["id_masked"] == scene.ids[0][:4] + "*" * 10 + scene.ids[0][-4:]
        assert first["name_masked"] == scene.names[0][0] + "*" + scene.names[0][-1]
        assert scene.ids[0] not in r.text and scene.names[0] not in r.text


class TestIdempotentScans:
    async def test_the_same_event_twice_answers_alike_and_counts_once(self, scene):
        tube = scene.barcodes["P1"][0]
        first = await scene.sample(tube, scene.codes[0], event_id="phone7-0001")
        await scene.sample(tube, scene.codes[1], event_id="phone7-0002")
        again = await scene.sample(tube, scene.codes[0], event_id="phone7-0001")
        assert again.status_code == 201
        assert again.json() == first.json()
        state = await scene.client.get(
            f"/rounds/{scene.round_id}/tubes/{tube}", headers=scene.tokens["P1"]
        )
        assert state.json()["count"] == 2

    async def test_a_refused_event_can_be_sent_again_once_fixed(self, scene):
        tube = scene.barcodes["P1"][0]
        closed = await scene.sample(tube, UNKNOWN_CODE, event_id="e-1")
        assert closed.status_code == 404
        r = await scene.sample(tube, scene.codes[0], event_id="e-1")
        assert r.status_code == 201 and r.json()["count"] == 1


class TestSealByHand:
    async def test_sealing_twice_answers_the_same(self, scene):
        tube = scene.barcodes["P1"][0]
        await scene.fill(tube, range(4))
        path = f"/rounds/{scene.round_id}/tubes/{tube}/seal"
        assert (await scene.post(path, None, "P1")).json() == {"tube": tube, "count": 4}
        assert (await scene.post(path, None, "P1")).json() == {"tube": tube, "count": 4}

    async def test_a_tube_with_no_sample_cannot_be_sealed(self, scene):
        r = await scene.post(
            f"/rounds/{scene.round_id}/tubes/{scene.barcodes['P1'][0]}/seal", None, "P1"
        )
        assert (r.status_code, r.json()["type"]) == (404, "not-found")


class TestLastSlotRace:
    async def test_of_many_scans_racing_for_the_last_slot_exactly_one_wins(
        self, committed_client, engine, make_scene
    ):
        scene = await make_scene(committed_client).build(residents=30)
        tube = scene.barcodes["P1"][0]
        await scene.fill(tube, range(9))
        answers = await asyncio.gather(*(scene.sample(tube, scene.codes[i]) for i in range(9, 25)))
        codes = sorted(a.status_code for a in answers)
        assert codes.count(201) == 1
        assert all(a.json()["type"] == "tube-full" for a in answers if a.status_code == 409)
        assert codes.count(409) == 15
        async with engine.connect() as conn:
            count = await conn.scalar(
                text("SELECT count FROM tubes WHERE barcode = :b"), {"b": tube}
            )
            members = await conn.scalar(
                text(
                    "SELECT count(*) FROM samples s JOIN tubes t ON t.serial = s.tube_serial"
                    " WHERE t.barcode = :b"
                ),
                {"b": tube},
            )
        assert (count, members) == (10, 10)

    async def test_the_same_event_sent_twice_at_once_is_applied_once(
        self, committed_client, engine, make_scene
    ):
        scene = await make_scene(committed_client).build(residents=3)
        tube = scene.barcodes["P1"][0]
        answers = await asyncio.gather(
            *(scene.sample(tube, scene.codes[0], event_id="dup-1") for _ in range(6))
        )
        assert {a.status_code for a in answers} == {201}
        assert {a.json()["count"] for a in answers} == {1}
        async with engine.connect() as conn:
            members = await conn.scalar(text("SELECT count(*) FROM samples"))
        assert members == 1
