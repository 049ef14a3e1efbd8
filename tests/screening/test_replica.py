"""Reads that may be a second stale go to the replica (SCREENING_DATABASE_REPLICA_URL);
writes, and reads that must be exact, never do; a replica that does not answer sends
reads back to the primary.

A real streaming replica is started by bench/fleet.py; here the "replica" is a second
database with the same schema but none of the primary's rows, so every answer shows
which database it came from."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from screening.app import create_app
from screening.config import Settings
from screening.db import drop_database, ensure_database, migrate_engine, with_database


@pytest.fixture
async def replica_url(server_url: str) -> AsyncIterator[str]:
    name = f"screening_replica_{secrets.token_hex(3)}"
    await ensure_database(server_url, name)
    url = with_database(server_url, name)
    engine = create_async_engine(url)
    try:
        await migrate_engine(engine)
    finally:
        await engine.dispose()
    try:
        yield url
    finally:
        await drop_database(server_url, name)


def client_for(settings: Settings, engine, replica: str) -> httpx.AsyncClient:  # type: ignore[no-untyped-def]
    app = create_app(settings.model_copy(update={"database_replica_url": replica}), engine=engine)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    client = httpx.AsyncClient(transport=transport, base_url="http://test/api/v1")
    client.app = app  # type: ignore[attr-defined]
    return client


async def test_progress_is_read_from_the_replica_and_scans_go_to_the_primary(
    committed_client, make_scene, settings, engine, replica_url
) -> None:
    scene = await make_scene(committed_client).build()
    async with client_for(settings, engine, replica_url) as routed:
        scene.client = routed
        # the round exists only on the primary: the replica answers that it is unknown
        progress = await routed.get(
            f"/rounds/{scene.round_id}/progress", headers=scene.tokens["admin"]
        )
        assert progress.status_code == 404, progress.text
        # a scan through the same app lands on the primary
        tube = scene.barcodes["P1"][0]
        scan = await scene.post(
            f"/rounds/{scene.round_id}/samples",
            {"tube": tube, "resident_code": scene.codes[0]},
            "P1",
        )
        assert scan.status_code == 201, scan.text
        tube_read = await routed.get(
            f"/rounds/{scene.round_id}/tubes/{tube}", headers=scene.tokens["admin"]
        )
        assert tube_read.status_code == 200, tube_read.text
    # the primary holds it, and its progress shows it
    progress = await committed_client.get(
        f"/rounds/{scene.round_id}/progress", headers=scene.tokens["admin"]
    )
    assert progress.status_code == 200
    assert progress.json()["tubes"]["open"] == 1


async def test_a_replica_that_does_not_answer_sends_reads_to_the_primary(
    committed_client, make_scene, settings, engine
) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    scene = await make_scene(committed_client).build()
    dead = f"postgresql://postgres@127.0.0.1:{closed_port}/screening"
    async with client_for(settings, engine, dead) as routed:
        for _ in range(2):
            progress = await routed.get(
                f"/rounds/{scene.round_id}/progress", headers=scene.tokens["admin"]
            )
            assert progress.status_code == 200, progress.text
            assert progress.json()["registered"] == 0
        # it is left alone for a while rather than dialled on every read
        assert routed.app.state.replica.down_until > 0  # type: ignore[attr-defined]
