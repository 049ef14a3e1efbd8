"""Offline batches through POST /rounds/{id}/sync."""

from __future__ import annotations

import io

from sqlalchemy import text


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
        events += [sample(f"f{i}", t2, scene.codes[i]) for i in range(3)] + [seal("s2", t2)]
        events += [sample("f9", t2, scene.codes[9])]  # after the seal
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
        assert again.json() == {"applied": 0, "duplicates": 5, "rejected": []}
        state = await tube_state(scene, tube)
        assert (state["count"], state["state"]) == (4, "sealed")

    async def test_a_repeated_event_inside_one_batch_counts_once(self, scene):
        tube = scene.barcodes["P1"][0]
        r = await sync(scene, [sample("e1", tube, scene.codes[0])] * 3)
        assert r.json() == {"applied": 1, "duplicates": 2, "rejected": []}

    async def test_bad_events_are_rejected_alone_with_their_reason(self, scene):
        tube = scene.barcodes["P1"][0]
        events = [
            sample("ok1", tube, scene.codes[0]),
            sample("badcode", tube[:-1] + "X", scene.codes[1]),
            sample("nobody", tube, "0000000000000"),
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
            "weird": "invalid-request",
            "when": "invalid-request",
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

    async def test_a_closed_round_rejects_every_event(self, scene):
        await scene.post(f"/rounds/{scene.round_id}/close", None)
        tube = scene.barcodes["P1"][0]
        body = (await sync(scene, [sample("a", tube, scene.codes[0])])).json()
        assert body["rejected"] == [
            {"event_id": "a", "type": "round-closed", "detail": f"round {scene.round_id} is closed"}
        ]

    async def test_an_event_applied_online_is_a_duplicate_offline(self, scene):
        tube = scene.barcodes["P1"][0]
        await scene.sample(tube, scene.codes[0], event_id="same")
        body = (await sync(scene, [sample("same", tube, scene.codes[0])])).json()
        assert body == {"applied": 0, "duplicates": 1, "rejected": []}


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
        assert body == {"applied": 5000, "duplicates": 0, "rejected": []}
        counts = (
            await db_session.execute(
                text(
                    "SELECT count(*), sum(count), count(*) FILTER (WHERE state = 'sealed')"
                    " FROM tubes"
                )
            )
        ).one()
        assert tuple(counts) == (500, 5000, 500)
