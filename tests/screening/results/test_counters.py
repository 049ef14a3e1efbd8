"""The progress counters follow a large tube statement (planned afresh, migration
0006) exactly as they follow a small one, including after a small statement in the
same session, and count the new tube states."""

from __future__ import annotations

from sqlalchemy import text

SEED = text("""
INSERT INTO tubes (serial, barcode, round_id, sampling_point_id, kind, capacity, count, state,
                   lab_id, sealed_at)
SELECT g, 'T' || lpad(g::text, 13, '0'), :round_id, :point, 'pool', 10, 1, 'received', :lab,
       now()
FROM generate_series(CAST(:first AS bigint), CAST(:last AS bigint)) g
""")

COUNTS = text("""
SELECT sum(received) AS received, sum(resulted) AS resulted, sum(negative) AS negative,
       sum(rerun) AS rerun, sum(rejected) AS rejected
FROM progress_counts WHERE round_id = :round_id
""")


async def test_counters_follow_a_large_statement_after_a_small_one(scene, db_session):
    point = await db_session.scalar(text("SELECT id FROM sampling_points WHERE code = 'P1'"))
    lab = await db_session.scalar(text("SELECT id FROM labs WHERE code = 'L1'"))
    first = 90_000_000
    await db_session.execute(
        SEED,
        {
            "round_id": scene.round_id,
            "point": point,
            "lab": lab,
            "first": first,
            "last": first + 499,
        },
    )
    ids = {"round_id": scene.round_id}
    before = (await db_session.execute(COUNTS, ids)).one()
    assert before.received == 500
    # a small statement first: its cached plan must not serve the large one
    await db_session.execute(
        text("UPDATE tubes SET state = 'rerun' WHERE serial = :s"), {"s": first}
    )
    await db_session.execute(
        text(
            "UPDATE tubes SET state = 'resulted', result_call = 'negative', result_version = 1,"
            " resulted_at = now() WHERE serial BETWEEN :a AND :b"
        ),
        {"a": first + 1, "b": first + 400},
    )
    await db_session.execute(
        text("UPDATE tubes SET state = 'rejected' WHERE serial BETWEEN :a AND :b"),
        {"a": first + 401, "b": first + 499},
    )
    after = (await db_session.execute(COUNTS, ids)).one()
    assert tuple(after) == (0, 400, 400, 1, 99)
