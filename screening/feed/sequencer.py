"""Turning committed marks into numbered feed changes, exactly once.

Writers never number anything. Their transactions leave marks (migration's triggers:
a sample taken, a tube's state or result moved, a de-pool member's status moved), and
this sequencer, one at a time across every process (a transaction-level advisory
lock), in one statement:

1. deletes a batch of marks it can see: only committed ones, so the standings it then
   reads include every change those marks stand for;
2. computes the current standing of each person and round the marks touch, with the
   rules of ``pooling/standing.py`` in SQL (a test holds the two to the same answers);
3. upserts ``feed_standings`` where the standing differs from the last one fed, and
   appends those to ``feed_changes`` with the next ``seq``.

Every step is linear in the batch: the statement's CTEs are estimated at one row, and
a join of two of them became a nested loop comparing every pair (measured in issue
15: 552 people a second cost 304,152 comparisons and up to half a second of a core,
a stall for the scans sharing the two cores; a lab-day's 20,000 marks would cost 400
million). The deciding row is picked by one sort, and the last standing fed is found
by index.

Why this is exactly-once from any cursor: a ``seq`` is taken only inside a sequencer
transaction, and the next sequencer starts after it commits, so seqs become visible
in increasing order and a reader can never pass a seq that commits later (the trap of
numbering rows at insert time, when an earlier number may commit after a later one).
A mark left by a transaction still running is invisible now and is taken by a later
run, with a higher seq. A person whose standing moves twice between two runs (well
under a second apart: every feed read and the background worker run it) is fed once,
with the later standing: the feed says where people stand, in order, without repeats.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

# pg_advisory_xact_lock key: "feed" in ASCII
FEED_LOCK = 0x66656564
BATCH = 20_000

# The standing of every (person, round) a batch of marks touches, as
# pooling/standing.resident_status reads it, oldest sample first:
#   single_read: a single tube's call (suspicious reads retest), or a pooled sample's
#                de-pool answer (negative/positive/invalid); the last one wins;
#   pool_read:   a pooled sample with a case still open reads retest, else the pool's
#                call (positive/suspicious read retest); the last one counts when no
#                single_read exists; no read at all is pending.
# A pool of one (a tube of capacity 1) reads as a single, like the resident query.
SEQUENCE = text(
    """
    WITH taken AS (
        DELETE FROM feed_marks
        WHERE id IN (SELECT id FROM feed_marks ORDER BY id LIMIT :batch)
        RETURNING tube_serial, resident_id, round_id
    ), touched AS (
        SELECT resident_id, round_id FROM taken WHERE resident_id IS NOT NULL
        UNION
        SELECT s.resident_id, s.round_id
        FROM taken k JOIN samples s ON s.tube_serial = k.tube_serial
        WHERE k.tube_serial IS NOT NULL
    ), history AS (
        SELECT s.resident_id, s.round_id, s.id AS sample_id, s.sampled_at,
               t.serial AS tube_serial, t.lab_id, t.kind = 'pool' AND t.capacity > 1 AS pooled,
               t.resulted_at, m.updated_at AS retest_at,
               CASE
                   WHEN t.capacity = 1 OR s.kind = 'single' THEN
                       CASE t.result_call WHEN 'suspicious' THEN 'retest' ELSE t.result_call END
                   WHEN m.status IN ('negative', 'positive', 'invalid') THEN m.status
               END AS single_read,
               CASE
                   WHEN t.capacity = 1 OR s.kind = 'single' THEN NULL
                   WHEN m.status IN ('negative', 'positive', 'invalid') THEN NULL
                   WHEN m.status IS NOT NULL THEN 'retest'
                   WHEN t.result_call IN ('positive', 'suspicious') THEN 'retest'
                   ELSE t.result_call
               END AS pool_read
        FROM touched p
        JOIN samples s ON s.resident_id = p.resident_id AND s.round_id = p.round_id
        JOIN tubes t ON t.serial = s.tube_serial
        LEFT JOIN retest_cases c ON c.pool_tube_serial = t.serial
        LEFT JOIN retest_members m ON m.case_id = c.id AND m.resident_id = s.resident_id
    ), standing AS (
        -- per person and round the row that decides: the latest single read, else the
        -- latest pool read, else the latest sample (one sort, no self-join: a join of
        -- two CTEs is planned as a nested loop, quadratic in the batch)
        SELECT DISTINCT ON (resident_id, round_id) resident_id, round_id,
               coalesce(single_read, pool_read, 'pending') AS status,
               tube_serial, pooled, sampled_at, lab_id,
               CASE WHEN single_read IS NOT NULL AND pooled
                    THEN retest_at ELSE resulted_at END AS reported_at
        FROM history
        ORDER BY resident_id, round_id, single_read IS NULL, pool_read IS NULL,
                 sampled_at DESC, sample_id DESC
    ), moved AS (
        -- where the standing differs from the last one fed (an index look-up each)
        SELECT s.* FROM standing s
        LEFT JOIN feed_standings f ON f.resident_id = s.resident_id AND f.round_id = s.round_id
        WHERE f.status IS DISTINCT FROM s.status
    ), changed AS (
        INSERT INTO feed_standings AS f (resident_id, round_id, status)
        SELECT resident_id, round_id, status FROM moved
        ON CONFLICT (resident_id, round_id) DO UPDATE SET status = excluded.status
    ), numbered AS (
        INSERT INTO feed_changes (seq, resident_id, round_id, status, result_kind, tube_serial,
                                  pooled, sampled_at, reported_at, lab_id)
        SELECT nextval('feed_seq'), s.resident_id, s.round_id, s.status,
               CASE WHEN s.status IN ('negative', 'positive', 'invalid')
                    THEN 'final' ELSE 'provisional' END,
               s.tube_serial, s.pooled, s.sampled_at,
               CASE WHEN s.status = 'pending' THEN NULL ELSE s.reported_at END, s.lab_id
        FROM (SELECT * FROM moved ORDER BY round_id, resident_id) s
        RETURNING seq
    )
    SELECT (SELECT count(*) FROM taken) AS marks, (SELECT count(*) FROM numbered) AS changes
    """
)


async def sequence_feed(session: AsyncSession, *, batch: int = BATCH, wait: bool = False) -> int:
    """Number the changes behind up to ``batch`` committed marks; the caller commits.

    Returns how many marks were taken (0: nothing to do, or another sequencer is at it
    and ``wait`` is false). Call it again while it returns ``batch``.
    """
    if wait:
        await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": FEED_LOCK})
    else:
        got = await session.scalar(
            text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": FEED_LOCK}
        )
        if not got:
            return 0
    row = (await session.execute(SEQUENCE, {"batch": batch})).one()
    return int(row.marks)
