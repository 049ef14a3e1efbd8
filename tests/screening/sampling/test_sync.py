"""Offline batches through POST /rounds/{id}/sync."""

from __future__ import annotations

import io
from datetime import UTC, datetime

from sqlalchemy import text

from screening.residents.codes import new_resident_code


def sample(event_id, tube, code, **extra):
    return {
        "event_id": event_id,
        "type": "sample",
        "tube": tube,
        "resident_code": code,
        "at": "2026-11-22T09:00:00+08:00",
        **extra,
    }


def seal(event_id, tube):
    return {"event_id": event_id, "type": "seal", "tube": tube}


async def sync(scene, events, who="P1"):
    return await scene.post(f"/rounds/{scene.round_id}/sync", {"events": events}, who)


async def tube_state(scene, tube, who="P1"):
    r = await scene.client.get(f"/rounds/{scene.round_id}/tubes/{tube}", headers=scene.tokens[who])
    return r.json()


class TestSyncBatch:
    async def test_a_batch_is_applied_in_order_and_every_event_is_accounted_for(self, scene):
        t1, t2 = scene.barcodes["P1"][:2]
        events = [sample(f"e{i}", t1, scene.codes[i]) for i in range(10)]
        events += [sample("e10", t1, scene.codes[10])]  # the eleventh: tube full
        events += [sample(f"f{i}", t2, scene.codes[i]) for i in range(11, 14)] + [seal("s2", t2)]
        events += [sample("f9", t2, scene.codes[19])]  # after the seal
        r = await sync(scene, events)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["applied"] == 14
        assert body["duplicates"] == 0
        assert [(x["event_id"], x["type"]) for x in body["rejected"]] == [
            ("e10", "tube-full"),
            ("f9", "tube-sealed"),
        ]
        assert body["applied"] + body["duplicates"] + len(body["rejected"]) == len(events)
        full, sealed = await tube_state(scene, t1), await tube_state(scene, t2)
        assert (full["count"], full["state"]) == (10, "sealed")
        assert (sealed["count"], sealed["state"]) == (3, "sealed")
        assert [m["position"] for m in full["members"]] == list(range(1, 11))
        assert full["members"][0]["sampled_at"].startswith("2026-11-22T01:00:00")

    async def test_a_batch_sent_again_changes_nothing(self, scene):
        tube = scene.barcodes["P1"][0]
        events = [sample(f"e{i}", tube, scene.codes[i]) for i in range(4)] + [seal("s", tube)]
        first = await sync(scene, events)
        again = await sync(scene, events)
        assert first.json()["applied"] == 5
        assert again.json() == {"applied": 0, "duplicates": 5, "rejected": [], "registered": []}
        state = await tube_state(scene, tube)
        assert (state["count"], state["state"]) == (4, "sealed")

    async def test_a_repeated_event_inside_one_batch_counts_once(self, scene):
        tube = scene.barcodes["P1"][0]
        r = await sync(scene, [sample("e1", tube, scene.codes[0])] * 3)
        assert r.json() == {"applied": 1, "duplicates": 2, "rejected": [], "registered": []}

    async def test_bad_events_are_rejected_alone_with_their_reason(self, scene):
        tube = scene.barcodes["P1"][0]
        events = [
            sample("ok1", tube, scene.codes[0]),
            sample("badcode", tube[:-1] + "X", scene.codes[1]),
            sample("nobody", tube, new_resident_code()),
            {"event_id": "weird", "type": "teleport", "tube": tube},
            sample("when", tube, scene.codes[2], at="yesterday"),
            sample("twice", tube, scene.codes[0]),
            sample("ok2", tube, scene.codes[3]),
        ]
        body = (await sync(scene, events)).json()
        assert body["applied"] == 2
        assert {x["event_id"]: x["type"] for x in body["rejected"]} == {
            "badcode": "bad-barcode",
            "nobody": "unknown-resident",
            "weird": "invalid-event",
            "when": "invalid-event",
            "twice": "already-in-tube",
        }
        assert all(x["detail"] for x in body["rejected"])
        assert (await tube_state(scene, tube))["count"] == 2

    async def test_a_refused_event_is_applied_when_sent_again_after_a_fix(self, scene):
        tube = scene.barcodes["P1"][0]
        other = scene.barcodes["P1"][1]
        await scene.fill(tube, range(10))
        first = await sync(scene, [sample("late", tube, scene.codes[12])])
        assert first.json()["rejected"][0]["type"] == "tube-full"
        fixed = await sync(scene, [sample("late", other, scene.codes[12])])
        assert fixed.json()["applied"] == 1

    async def test_a_sampler_cannot_sync_into_another_points_tubes(self, scene):
        body = (await sync(scene, [sample("x", scene.barcodes["P2"][0], scene.codes[0])])).json()
        assert body["rejected"][0]["type"] == "forbidden"

    async def test_a_closed_round_rejects_swabs_taken_after_it_closed(self, scene):
        await scene.post(f"/rounds/{scene.round_id}/close", None)
        tube = scene.barcodes["P1"][0]
        late = sample("a", tube, scene.codes[0], at=datetime.now(UTC).isoformat())
        body = (await sync(scene, [late])).json()
        assert [(x["event_id"], x["type"]) for x in body["rejected"]] == [("a", "round-closed")]
        assert body["applied"] == 0

    async def test_an_event_applied_online_is_a_duplicate_offline(self, scene):
        tube = scene.barcodes["P1"][0]
        await scene.sample(tube, scene.codes[0], event_id="same")
        body = (await sync(scene, [sample("same", tube, scene.codes[0])])).json()
        assert body == {"applied": 0, "duplicates": 1, "rejected": [], "registered": []}


class TestNormalBatch:
    async def test_a_5000_event_batch_fills_500_tubes(self, scene, db_session):
        lines = ["id_type,id_number,name,phone,district"]
        lines += [f"other,E{i:08d},居民{i},,D1" for i in range(5000)]
        imported = await scene.client.post(
            "/residents/import",
            headers=scene.tokens["admin"],
            files={"file": ("census.csv", io.BytesIO("\n".join(lines).encode()), "text/csv")},
        )
        codes = [c["resident_code"] for c in imported.json()["codes"]]
        assert len(codes) == 5000
        issued = await scene.ok(
            f"/rounds/{scene.round_id}/barcodes", {"sampling_point": "P1", "count": 500}
        )
        listing = await scene.client.get(
            f"/rounds/{scene.round_id}/barcodes/{issued['range_id']}", headers=scene.tokens["admin"]
        )
        tubes = listing.json()["barcodes"]
        events = [sample(f"b{i}", tubes[i // 10], codes[i]) for i in range(5000)]
        body = (await sync(scene, events)).json()
        assert body == {"applied": 5000, "duplicates": 0, "rejected": [], "registered": []}
        counts = (
            await db_session.execute(
                text(
                    "SELECT count(*), sum(count), count(*) FILTER (WHERE state = 'sealed')"
                    " FROM tubes"
                )
            )
        ).one()
        assert tuple(counts) == (500, 5000, 500)


async def progress(scene):
    r = await scene.client.get(f"/rounds/{scene.round_id}/progress", headers=scene.tokens["admin"])
    assert r.status_code == 200, r.text
    return r.json()


class TestPeopleOfABatch:
    """A batch adds its people to round_people in one statement (migration 0011), not
    through the samples' row trigger: the counters must stay exact."""

    async def test_a_batch_counts_each_person_once_where_first_sampled(self, scene, db_session):
        p1, q1 = scene.barcodes["P1"], scene.barcodes["Q1"]
        await scene.fill(q1[0], [0], who="Q1")  # person 0 is first sampled at Q1, online
        events = [sample(f"a{i}", p1[0], scene.codes[i]) for i in (1, 2, 3)]
        events += [sample("b1", p1[1], scene.codes[1], kind="single")]  # person 1 again
        events += [sample("c0", p1[2], scene.codes[0], kind="single")]  # person 0 again
        body = (await sync(scene, events)).json()
        assert body["applied"] == 5, body
        progress_now = await progress(scene)
        assert (progress_now["registered"], progress_now["samples"]) == (4, 6)
        points = {p["sampling_point"]: p for p in progress_now["sampling_points"]}
        assert (points["P1"]["registered"], points["P1"]["samples"]) == (3, 5)
        assert (points["Q1"]["registered"], points["Q1"]["samples"]) == (1, 1)
        firsts = (
            await db_session.execute(
                text(
                    "SELECT count(*) FROM round_people f WHERE f.round_id = :r AND f.sample_id ="
                    " (SELECT min(s.id) FROM samples s WHERE s.round_id = f.round_id"
                    " AND s.resident_id = f.resident_id)"
                ),
                {"r": scene.round_id},
            )
        ).scalar_one()
        assert firsts == 4  # each person's first sample, the online one for person 0

    async def test_a_scan_after_a_batch_still_counts_its_person(self, scene):
        tube = scene.barcodes["P1"][0]
        await sync(scene, [sample("a", tube, scene.codes[0])])
        r = await scene.sample(tube, scene.codes[1])
        assert r.status_code == 201, r.text
        assert (await progress(scene))["registered"] == 2

    async def test_a_batch_sent_again_counts_nobody_twice(self, scene):
        tube = scene.barcodes["P1"][0]
        events = [sample(f"e{i}", tube, scene.codes[i]) for i in range(3)]
        await sync(scene, events)
        await sync(scene, events)
        body = await progress(scene)
        assert (body["registered"], body["samples"]) == (3, 3)

    async def test_samples_keep_the_order_their_events_were_taken_in(self, scene, db_session):
        t1, t2 = scene.barcodes["P1"][:2]
        events = [sample(f"z{9 - i}", (t1, t2)[i % 2], scene.codes[i]) for i in range(6)]
        await sync(scene, events)
        ids = (
            await db_session.execute(
                text(
                    "SELECT s.id FROM applied_events e JOIN samples s ON s.id = e.sample_id"
                    " WHERE e.round_id = :r AND e.event_id = ANY(:ids)"
                ),
                {"r": scene.round_id, "ids": [e["event_id"] for e in events]},
            )
        ).scalars()
        by_event = dict(zip([e["event_id"] for e in events], sorted(ids), strict=True))
        in_order = (
            await db_session.execute(
                text(
                    "SELECT e.event_id FROM applied_events e JOIN samples s ON s.id = e.sample_id"
                    " WHERE e.round_id = :r ORDER BY s.id"
                ),
                {"r": scene.round_id},
            )
        ).scalars()
        assert list(in_order) == list(by_event)

    async def test_an_event_applied_offline_answers_the_online_scan_as_the_first_time(self, scene):
        tube = scene.barcodes["P1"][0]
        await sync(scene, [sample("same", tube, scene.codes[0])])
        r = await scene.sample(tube, scene.codes[0], event_id="same")
        assert r.status_code == 201, r.text
        assert (r.json()["tube"], r.json()["count"]) == (tube, 1)
