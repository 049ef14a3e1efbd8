"""Scans, seals and sync batches racing each other with real concurrent requests
against the real database (issue 11 "Under concurrency", issue 16 "Deadlock between a
sync batch and scans/seals"): never a 5xx, no deadlock at all (PostgreSQL's own count
of deadlocks in the test database stays 0), and every tube's count equals its samples.

``SCREENING_HAMMER_TRIALS`` sets how many rounds of the mix run (default 40; the issue
measured 1,000: run that by hand, it takes minutes on a shared machine)."""

from __future__ import annotations

import asyncio
import io
import os

from sqlalchemy import text

TRIALS = int(os.environ.get("SCREENING_HAMMER_TRIALS", "40"))


async def census(scene, n, prefix):
    lines = ["id_type,id_number,name,phone,district"]
    lines += [f"other,{prefix}{i:07d},居民{i},,D1" for i in range(n)]
    r = await scene.client.post(
        "/residents/import",
        headers=scene.tokens["admin"],
        files={"file": ("census.csv", io.BytesIO("\n".join(lines).encode()), "text/csv")},
    )
    assert r.status_code == 200, r.text
    return [c["resident_code"] for c in r.json()["codes"]]


async def barcodes(scene, point, count):
    issued = await scene.ok(
        f"/rounds/{scene.round_id}/barcodes", {"sampling_point": point, "count": count}
    )
    listing = await scene.client.get(
        f"/rounds/{scene.round_id}/barcodes/{issued['range_id']}", headers=scene.tokens["admin"]
    )
    return listing.json()["barcodes"]


async def deadlocks(engine):
    async with engine.connect() as conn:
        return await conn.scalar(
            text("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()")
        )


async def consistent(engine):
    """Tubes whose count differs from their samples (none when all is well)."""
    async with engine.connect() as conn:
        return (
            await conn.execute(
                text(
                    "SELECT t.barcode, t.count, count(s.id) FROM tubes t"
                    " LEFT JOIN samples s ON s.tube_serial = t.serial"
                    " GROUP BY t.serial HAVING t.count <> count(s.id)"
                )
            )
        ).all()


def statuses(answers):
    return sorted({a.status_code for a in answers})


class TestFirstScansOfANewTube:
    async def test_many_first_scans_of_brand_new_tubes_never_fail(
        self, committed_client, engine, make_scene
    ):
        scene = await make_scene(committed_client).build(residents=2)
        codes = await census(scene, 200, "F")
        tubes = await barcodes(scene, "P1", 20)
        answers = await asyncio.gather(
            *(
                scene.sample(tube, codes[t * 10 + i], event_id=f"first-{t}-{i}")
                for i in range(10)
                for t, tube in enumerate(tubes)
            )
        )
        assert statuses(answers) == [201], [a.text for a in answers if a.status_code != 201]
        async with engine.connect() as conn:
            held = (await conn.execute(text("SELECT count, state FROM tubes"))).all()
        assert sorted(held) == [(10, "sealed")] * 20
        assert await consistent(engine) == []

    async def test_first_scans_racing_a_batch_opening_the_same_tube_never_fail(
        self, committed_client, engine, make_scene
    ):
        scene = await make_scene(committed_client).build(residents=2)
        codes = await census(scene, 200, "G")
        tubes = await barcodes(scene, "P1", 20)
        now = "2026-11-23T08:00:00+08:00"
        requests = []
        for t, tube in enumerate(tubes):
            requests.append(scene.sample(tube, codes[t * 10]))
            events = [
                {
                    "event_id": f"b{t}-{i}",
                    "type": "sample",
                    "tube": tube,
                    "resident_code": codes[t * 10 + i],
                    "at": now,
                }
                for i in range(1, 5)
            ]
            requests.append(scene.post(f"/rounds/{scene.round_id}/sync", {"events": events}))
            requests.append(scene.sample(tube, codes[t * 10 + 5]))
        answers = await asyncio.gather(*requests)
        assert statuses(answers) in ([200, 201],), [a.text for a in answers if a.status_code >= 300]
        async with engine.connect() as conn:
            total = await conn.scalar(text("SELECT sum(count) FROM tubes"))
        assert total == 20 * 6
        assert await consistent(engine) == []


class TestSyncAgainstScansAndSeals:
    async def test_the_mix_that_deadlocked_runs_without_a_deadlock_or_a_5xx(
        self, committed_client, engine, make_scene
    ):
        scene = await make_scene(committed_client).build(residents=2)
        people = iter(await census(scene, TRIALS * 12, "H"))
        tubes = iter(await barcodes(scene, "P1", TRIALS * 4))
        before = await deadlocks(engine)
        failures = []
        for trial in range(TRIALS):
            shared = next(tubes)
            opened = await scene.sample(shared, next(people))
            assert opened.status_code == 201, opened.text
            requests = []
            for b in range(3):
                events = [
                    {
                        "event_id": f"t{trial}-{b}-new",
                        "type": "sample",
                        "tube": next(tubes),
                        "resident_code": next(people),
                    },
                    {
                        "event_id": f"t{trial}-{b}-old",
                        "type": "sample",
                        "tube": shared,
                        "resident_code": next(people),
                    },
                ]
                requests.append(scene.post(f"/rounds/{scene.round_id}/sync", {"events": events}))
                requests.append(scene.sample(shared, next(people)))
            requests.append(scene.sample(shared, next(people)))
            requests.append(scene.post(f"/rounds/{scene.round_id}/tubes/{shared}/seal", None))
            answers = await asyncio.gather(*requests)
            failures += [a.text for a in answers if a.status_code >= 500]
            for a in answers:
                if a.status_code == 409:
                    assert a.json()["type"] in ("tube-sealed", "tube-full"), a.text
                else:
                    assert a.status_code in (200, 201), a.text
        assert failures == []
        assert await deadlocks(engine) == before
        assert await consistent(engine) == []
        async with engine.connect() as conn:
            open_tubes = await conn.scalar(
                text("SELECT count(*) FROM tubes WHERE state = 'open' AND count = capacity")
            )
            progress = (
                await conn.execute(
                    text(
                        "SELECT (SELECT sum(registered) FROM progress_counts),"
                        " (SELECT count(*) FROM samples)"
                    )
                )
            ).one()
        assert open_tubes == 0
        assert progress[0] == progress[1]


class TestSyncAgainstScansOfTheSamePeople:
    """A batch adds its people to round_people before it moves a counter row, as a
    scan into an open tube does (tube, person, counters); a scan that opens a new tube
    moves its counter row first, so against those a deadlock can still happen and is
    run again. Either way: never a 5xx, and each person counts once."""

    async def race(self, scene, engine, open_first):
        people = await census(scene, TRIALS * 4, "J")
        pools = iter(await barcodes(scene, "P1", TRIALS * 4))
        singles = await barcodes(scene, "P1", TRIALS * 4)
        others = iter(await census(scene, TRIALS * 4, "K"))
        answers = []
        for trial in range(TRIALS):
            mine = people[trial * 4 : trial * 4 + 4]
            tubes = [next(pools) for _ in mine]
            if open_first:  # the scans go into tubes opened already
                for tube in tubes:
                    assert (await scene.sample(tube, next(others))).status_code == 201
            events = [
                {"event_id": f"p{trial}-{i}", "type": "sample", "tube": singles[trial * 4 + i]}
                | {"resident_code": code, "kind": "single"}
                for i, code in enumerate(mine)
            ]
            answers += await asyncio.gather(
                scene.post(f"/rounds/{scene.round_id}/sync", {"events": events}),
                *(scene.sample(tube, code) for tube, code in zip(tubes, mine, strict=True)),
            )
        assert [a.text for a in answers if a.status_code not in (200, 201)] == []
        assert all(a.json()["applied"] == 4 for a in answers if a.status_code == 200)
        async with engine.connect() as conn:
            counted = (
                await conn.execute(
                    text(
                        "SELECT (SELECT sum(people) FROM progress_counts),"
                        " (SELECT count(DISTINCT resident_id) FROM samples),"
                        " (SELECT sum(registered) FROM progress_counts),"
                        " (SELECT count(*) FROM samples)"
                    )
                )
            ).one()
        assert counted[0] == counted[1]
        assert counted[2] == counted[3]
        assert await consistent(engine) == []

    async def test_against_scans_into_open_tubes_no_deadlock_at_all(
        self, committed_client, engine, make_scene
    ):
        scene = await make_scene(committed_client).build(residents=2)
        before = await deadlocks(engine)
        await self.race(scene, engine, open_first=True)
        assert await deadlocks(engine) == before

    async def test_against_scans_opening_new_tubes_a_deadlock_is_run_again(
        self, committed_client, engine, make_scene
    ):
        scene = await make_scene(committed_client).build(residents=2)
        await self.race(scene, engine, open_first=False)
