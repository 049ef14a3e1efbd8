"""The overdue sweep's leadership (issue 15): one sweeper holds the advisory lock, the
next takes over when it stops, and behind PgBouncer each sweep locks on its own. Two
sweeper tasks on their own connections stand for two processes (the real two-worker
server is in tests/screening/test_processes.py)."""

from __future__ import annotations

import asyncio
import contextlib

from sqlalchemy import text

from screening.retests.sweeper import SWEEP_LOCK, run_sweeper

POSITIVE = "30.1,31.2,26"
HOLDERS = text(
    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
    " AND classid = :hi AND objid = :lo AND objsubid = 1"
    " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
)


async def late_case(scene, tube_no: int, person: int) -> None:
    tube = scene.barcodes["P1"][tube_no]
    await scene.fill(tube, [person])
    await scene.ship([tube], box=f"LATE-{tube_no}")
    await scene.upload_lis([f"A3,{tube},{POSITIVE}"], f"LATE-{tube_no}")


async def scalar(engine, query, **params):
    async with engine.connect() as conn:
        return await conn.scalar(text(query) if isinstance(query, str) else query, params)


async def until(engine, query, expected, **params):
    for _ in range(200):
        if await scalar(engine, query, **params) == expected:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{query} never became {expected}")


async def stop(task):
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


OVERDUE = "SELECT count(*) FROM retest_events WHERE kind = 'case-overdue'"
LOCK = {"hi": SWEEP_LOCK >> 32, "lo": SWEEP_LOCK & 0xFFFFFFFF}


async def test_one_sweeper_leads_and_the_next_takes_over_when_it_stops(
    committed_client, make_scene, engine, settings
):
    late = settings.model_copy(
        update={
            "retest_member_overdue_minutes": 0,
            "retest_case_overdue_minutes": 0,
            "overdue_sweep_seconds": 0.05,
        }
    )
    scene = await make_scene(committed_client).build(residents=2)
    first = asyncio.create_task(run_sweeper(engine, late))
    await until(engine, HOLDERS, 1, **LOCK)
    second = asyncio.create_task(run_sweeper(engine, late))
    try:
        await late_case(scene, 0, 0)
        await until(engine, OVERDUE, 1)
        await asyncio.sleep(0.3)  # more sweeps by the leader, more tries by the other
        assert await scalar(engine, HOLDERS, **LOCK) == 1
        await stop(first)  # its connection is closed, and the lock with it
        await late_case(scene, 1, 1)
        await until(engine, OVERDUE, 2)  # the second one swept it
        assert await scalar(engine, HOLDERS, **LOCK) == 1
    finally:
        await stop(first)
        await stop(second)
    await until(engine, HOLDERS, 0, **LOCK)


async def test_behind_pgbouncer_each_sweep_takes_the_lock_for_its_transaction(
    committed_client, make_scene, engine, settings
):
    late = settings.model_copy(
        update={
            "retest_member_overdue_minutes": 0,
            "retest_case_overdue_minutes": 0,
            "overdue_sweep_seconds": 0.05,
            "database_pooler": True,
        }
    )
    scene = await make_scene(committed_client).build(residents=2)
    sweepers = [asyncio.create_task(run_sweeper(engine, late)) for _ in range(2)]
    try:
        await late_case(scene, 0, 0)
        await until(engine, OVERDUE, 1)
        await asyncio.sleep(0.3)
        assert await scalar(engine, OVERDUE) == 1  # flagged once, whoever swept
    finally:
        for task in sweepers:
            await stop(task)
    assert await scalar(engine, HOLDERS, **LOCK) == 0  # nothing held between sweeps
