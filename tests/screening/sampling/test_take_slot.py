"""``scan_take_slot`` (migration 0010), the online scan's one-statement write: a
refusal leaves nothing behind, an event claimed before is a replay."""

from __future__ import annotations

import asyncpg
import pytest

from pooling.barcodes import parse_barcode
from screening.db import raw_connection
from screening.sampling import queries


async def resident_id(conn, code: str) -> int:
    return int(await conn.fetchval("SELECT id FROM residents WHERE code = $1", code))


async def test_a_refused_slot_leaves_no_claim_and_no_count(scene, db_session):
    tube = scene.barcodes["P1"][0]
    await scene.fill(tube, range(10))  # full and sealed
    conn = await raw_connection(db_session)
    serial = parse_barcode(tube)
    person = await resident_id(conn, scene.codes[10])
    with pytest.raises(asyncpg.PostgresError) as refused:
        async with conn.transaction():
            await conn.fetchrow(
                queries.TAKE_SLOT, scene.round_id, serial, person, "pool", "ev-x", None, None, None
            )
    assert refused.value.sqlstate == queries.SLOT_REFUSED
    assert await conn.fetchval("SELECT count(*) FROM applied_events WHERE event_id = 'ev-x'") == 0
    assert await conn.fetchval("SELECT count FROM tubes WHERE serial = $1", serial) == 10
    assert await conn.fetchval("SELECT count(*) FROM samples WHERE tube_serial = $1", serial) == 10


async def test_a_new_tube_is_opened_and_an_event_claimed_once(scene, db_session):
    tube = scene.barcodes["P1"][1]
    conn = await raw_connection(db_session)
    serial = parse_barcode(tube)
    person = await resident_id(conn, scene.codes[0])
    point = await conn.fetchval("SELECT id FROM sampling_points WHERE code = 'P1'")
    args = (scene.round_id, serial, person, "pool", "ev-1", tube, point, 10)
    first = await conn.fetchrow(queries.TAKE_SLOT, *args)
    assert (first["outcome"], first["slot_position"], first["slot_capacity"]) == ("taken", 1, 10)
    linked = await conn.fetchval("SELECT sample_id FROM applied_events WHERE event_id = 'ev-1'")
    assert linked == first["taken_id"]
    again = await conn.fetchrow(queries.TAKE_SLOT, *args)
    assert again["outcome"] == "replay" and again["taken_id"] is None
    assert await conn.fetchval("SELECT count FROM tubes WHERE serial = $1", serial) == 1
