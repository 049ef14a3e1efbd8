"""The live feed shares one poller per process (issue 15): many listeners cost what one
does, each still gets exactly its own events, once, in order."""

from __future__ import annotations

import asyncio

from sqlalchemy import event

POSITIVE = "30.1,31.2,26"


def frames(body: str) -> list[dict[str, str]]:
    out = []
    for block in body.split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in block.splitlines() if line and not line.startswith(":")
        )
        if "event" in fields:
            out.append(fields)
    return out


async def open_case(scene, tube_no: int, people: list[int], who: str = "P1") -> None:
    tube = scene.barcodes[who][tube_no]
    await scene.fill(tube, people, who)
    await scene.ship([tube], box=f"FEED-{who}-{tube_no}", who=who)
    await scene.upload_lis([f"A3,{tube},{POSITIVE}"], f"FEED-{who}-{tube_no}")


def listen(scene, who="admin", **params):
    return asyncio.create_task(
        scene.client.get("/events", params=params, headers=scene.tokens[who])
    )


class TestSharedPoller:
    async def test_thirty_listeners_are_served_by_one_poller(
        self, committed_client, make_scene, engine
    ):
        scene = await make_scene(committed_client).build(residents=4)
        polls = []

        def count(conn, cursor, statement, *_):
            if "FROM retest_events e" in statement:
                polls.append(statement)

        listeners = [listen(scene, max_seconds=30, limit=1) for _ in range(30)]
        await asyncio.sleep(0.5)
        event.listen(engine.sync_engine, "before_cursor_execute", count)
        try:
            await asyncio.sleep(0.5)  # ten poll intervals of the test settings (0.05 s)
        finally:
            event.remove(engine.sync_engine, "before_cursor_execute", count)
        await open_case(scene, 0, [0, 1])
        answers = await asyncio.gather(*listeners)
        # one poller: about one query per interval, whatever the number of listeners
        # (a query per listener per interval would be 300)
        assert 0 < len(polls) < 30
        assert all([f["event"] for f in frames(r.text)] == ["case-opened"] for r in answers)

    async def test_each_listener_gets_only_its_own_points_events(
        self, committed_client, make_scene
    ):
        scene = await make_scene(committed_client).build(residents=4)
        p1, p2 = listen(scene, "P1", limit=1, max_seconds=10), listen(scene, "P2", limit=1)
        await asyncio.sleep(0.3)
        await open_case(scene, 0, [0])
        await open_case(scene, 0, [1], who="P2")
        got_p1, got_p2 = frames((await p1).text), frames((await p2).text)
        assert [f["event"] for f in got_p1] == [f["event"] for f in got_p2] == ["case-opened"]
        assert '"sampling_point":"P1"' in got_p1[0]["data"]
        assert '"sampling_point":"P2"' in got_p2[0]["data"]

    async def test_a_listener_catching_up_from_the_database_joins_the_live_stream(
        self, committed_client, make_scene
    ):
        scene = await make_scene(committed_client).build(residents=4)
        await open_case(scene, 0, [0])
        live = listen(scene, max_seconds=10)  # starts the poller after that event
        await asyncio.sleep(0.3)
        resuming = listen(scene, after=0, limit=2, max_seconds=10)  # behind the poller
        await asyncio.sleep(0.3)
        await open_case(scene, 1, [1])
        got = frames((await resuming).text)
        ids = [int(f["id"]) for f in got]
        assert [f["event"] for f in got] == ["case-opened", "case-opened"]
        assert ids == sorted(set(ids))  # in order, none twice
        live.cancel()
