"""Named SQL for sampling, shared by the online scan and the offline replay.

Lock order (issue 16: a sync batch deadlocked against scans and seals): every
request that changes tubes locks **tube rows first, then progress counter rows**.
Counter rows (``progress_counts``) are locked by the triggers on ``tubes`` and
``samples`` inserts and state changes, so:
- a scan updates its tube (the conditional ``UPDATE`` locks it) before it inserts
  the sample (which locks the counter row);
- a seal locks its tube ``FOR UPDATE`` before changing its state;
- a sync batch locks every existing tube of the batch ``FOR UPDATE`` in serial order
  before it inserts any tube or sample; then it adds its people to ``round_people``
  (:data:`BATCH_PEOPLE`: a person's row is taken between the tube and the counters, as
  a scan into an open tube takes it; a scan that opens a tube moves its counter row
  first, so it and a batch of the same person can still deadlock, and are retried);
  the tubes it opens are inserted after that.
A tube that does not exist yet cannot be locked; it is created by the first scan (a
scan inserts it before its counter row is touched by anything else of its own) or by
a sync batch, which learns from ``ON CONFLICT`` that someone else opened it first
and then runs the whole transaction again (:class:`screening.db.RetryTransaction`).
A deadlock or serialization failure that still happens is retried the same way.
"""

from __future__ import annotations

from sqlalchemy import text

# A person in one of these is "already sampled" for this round: a pool sample whose
# tube's result is not invalid (an invalid pool means: swab them again).
LIVE_POOL_SAMPLE = "s2.kind = 'pool' AND t2.result_call IS DISTINCT FROM 'invalid'"

# A person who must be swabbed alone: a member of an open de-pool case still to be
# recalled (or recalled again after an invalid single result).
NEEDS_SINGLE = """EXISTS (SELECT 1 FROM retest_members m JOIN retest_cases c ON c.id = m.case_id
               WHERE m.resident_id = {resident} AND c.status = 'open'
                 AND m.status IN ('to-recall', 'invalid'))"""

# Everything an online scan needs to decide, in one round trip. The online scan runs
# on the asyncpg connection itself (issue 15: SQLAlchemy's layers cost the service more
# than PostgreSQL spends on the statements), so these are asyncpg's ``$n`` statements,
# prepared once per connection by its statement cache.
# $1 round, $2 tube serial, $3 resident code, $4 event_id (or NULL).
SCAN_CONTEXT = f"""
    SELECT r.status AS round_status, r.closed_at,
           p.id AS resident_id, p.name_enc,
           {NEEDS_SINGLE.format(resident="p.id")} AS needs_single,
           e.barcode AS earlier_tube, e.point AS earlier_point, e.sampled_at AS earlier_at,
           t.serial IS NOT NULL AS tube_exists, t.round_id AS tube_round,
           t.sampling_point_id AS tube_point, t.kind AS tube_kind, t.state AS tube_state,
           t.count AS tube_count, t.capacity AS tube_capacity,
           EXISTS (SELECT 1 FROM samples s WHERE s.tube_serial = $2
                   AND s.resident_id = p.id) AS member,
           br.sampling_point_id AS range_point,
           COALESCE(rd.pool_size, r.pool_size) AS district_pool,
           (SELECT a.type FROM applied_events a
            WHERE a.round_id = r.id AND a.event_id = $4::text) AS event_type
    FROM rounds r
    LEFT JOIN residents p ON p.code = $3
    LEFT JOIN tubes t ON t.serial = $2
    LEFT JOIN LATERAL (
        SELECT t2.barcode, sp2.code AS point, s2.sampled_at
        FROM samples s2 JOIN tubes t2 ON t2.serial = s2.tube_serial
        JOIN sampling_points sp2 ON sp2.id = t2.sampling_point_id
        WHERE s2.resident_id = p.id AND s2.round_id = r.id AND s2.tube_serial <> $2
          AND {LIVE_POOL_SAMPLE}
        ORDER BY s2.id LIMIT 1
    ) e ON true
    LEFT JOIN LATERAL (
        SELECT sampling_point_id FROM barcode_ranges
        WHERE round_id = r.id AND first_serial <= $2 AND last_serial >= $2
        LIMIT 1
    ) br ON true
    LEFT JOIN sampling_points sp ON sp.id = br.sampling_point_id
    LEFT JOIN round_districts rd ON rd.round_id = r.id AND rd.district_id = sp.district_id
    WHERE r.id = $1
    """

# The online scan's write, one call (migration 0010): claim the event, open the tube
# when $6 (its barcode) is given, take a slot, store the sample, link the event.
# ('taken', id, position, capacity), ('replay', ...) for an event claimed before, or
# SQLSTATE SLOT_REFUSED with nothing written: the caller reads the tube to say why.
TAKE_SLOT = "SELECT * FROM scan_take_slot($1, $2, $3, $4, $5, $6, $7, $8)"
SLOT_REFUSED = "SC001"

TUBE_NOW = """
    SELECT t.barcode, t.kind, t.state, t.count AS tube_count, t.capacity,
           EXISTS (SELECT 1 FROM samples s WHERE s.tube_serial = t.serial
                   AND s.resident_id = $2) AS member
    FROM tubes t WHERE t.serial = $1
    """

# An event applied before, answered as the first time ($1 round, $2 event_id).
REPLAY = """
    SELECT e.type, t.barcode, t.kind, t.capacity, t.count AS tube_count, s.position,
           p.name_enc
    FROM applied_events e
    JOIN tubes t ON t.serial = e.tube_serial
    LEFT JOIN samples s ON s.id = e.sample_id
    LEFT JOIN residents p ON p.id = s.resident_id
    WHERE e.round_id = $1 AND e.event_id = $2
    """

# The same facts per person for a whole batch: code -> id, needs single, and the
# live pool tubes of this round they are in already.
BATCH_RESIDENTS = f"""
    SELECT coalesce(array_agg(p.code), '{{}}'), coalesce(array_agg(p.id), '{{}}'),
           coalesce(array_agg(p.id) FILTER (
               WHERE {NEEDS_SINGLE.format(resident="p.id")}), '{{}}')
    FROM residents p WHERE p.code = ANY($1::text[])
"""

BATCH_EARLIER = f"""
    SELECT DISTINCT ON (s2.resident_id) s2.resident_id, t2.barcode, sp2.code AS point,
           s2.sampled_at
    FROM samples s2 JOIN tubes t2 ON t2.serial = s2.tube_serial
    JOIN sampling_points sp2 ON sp2.id = t2.sampling_point_id
    WHERE s2.resident_id = ANY($1::bigint[]) AND s2.round_id = $2 AND {LIVE_POOL_SAMPLE}
    ORDER BY s2.resident_id, s2.id
"""


SEAL = text(
    """
    UPDATE tubes SET state = 'sealed', sealed_at = now()
    WHERE serial = :serial AND round_id = :round_id AND state = 'open' AND count > 0
    RETURNING count
    """
)

LOCK_TUBE_FOR_SEAL = text(
    "SELECT t.round_id, t.sampling_point_id, t.state, t.count AS tube_count"
    " FROM tubes t WHERE t.serial = :serial FOR UPDATE"
)

# ---- sync batches -----------------------------------------------------------------
# Sent through asyncpg on the session's own connection ($n parameters, arrays in
# binary): SQLAlchemy walked each element of a batch's arrays in Python, ~60 ms a
# batch (issue 15). BATCH_RESIDENTS and BATCH_EARLIER above are read the same way.
# What comes back per event comes back as arrays in one row, not a row per event:
# thousands of row objects outlive a batch's garbage collections and made the
# service's full collections (100+ ms each) come every other batch.

# Claim every event of the batch; what comes back is new, the rest are duplicates. A
# sample event's claim draws its sample's id now, in the order the events were taken
# (the samples keep that order, as when the database numbered them at insert), so the
# claim already names its sample and is never updated afterwards (an update of a row
# inserted by the same transaction checks its foreign key again: 5,000 checks).
BATCH_CLAIM = """
    WITH sent AS MATERIALIZED (
        SELECT e.event_id, e.type, e.serial,
               CASE WHEN e.type = 'sample' THEN nextval('samples_id_seq') END AS sample_id
        FROM unnest($2::text[], $3::text[], $4::bigint[]) AS e(event_id, type, serial)
    ), claimed AS (
        INSERT INTO applied_events (round_id, event_id, type, tube_serial, sample_id)
        SELECT $1, event_id, type, serial, sample_id FROM sent
        ORDER BY event_id
        ON CONFLICT DO NOTHING
        RETURNING event_id, sample_id
    )
    SELECT coalesce(array_agg(event_id), '{}'), coalesce(array_agg(sample_id), '{}')
    FROM claimed
"""

BATCH_MEMBERS = "SELECT tube_serial, resident_id FROM samples WHERE tube_serial = ANY($1::bigint[])"

# Tubes opened by the batch, inserted with their final count and state (after the
# existing tubes are locked: see the lock order above).
BATCH_CREATE_TUBES = """
    INSERT INTO tubes (serial, barcode, round_id, sampling_point_id, kind, capacity, count,
                       state, opened_at, sealed_at)
    SELECT t.serial, t.barcode, $1, t.point, t.kind, t.capacity, t.count, t.state,
           t.opened_at, t.sealed_at
    FROM unnest($2::bigint[], $3::text[], $4::int[], $5::text[], $6::int[], $7::int[],
                $8::text[], $9::timestamptz[], $10::timestamptz[])
         AS t(serial, barcode, point, kind, capacity, count, state, opened_at, sealed_at)
    ORDER BY t.serial
    ON CONFLICT DO NOTHING
    RETURNING serial
"""

# The people of the batch's applied samples, each with their first sample of it, into
# round_people in one statement (what the samples' row trigger does one sample at a
# time: migration 0011). Sent after the tube rows are locked and before anything moves
# a counter row, the order the online scan takes them in (tube, person, counters).
BATCH_PEOPLE = """
    INSERT INTO round_people (round_id, resident_id, sample_id)
    SELECT $1, p.resident_id, p.sample_id
    FROM unnest($2::bigint[], $3::bigint[]) AS p(resident_id, sample_id)
    ORDER BY p.resident_id
    ON CONFLICT DO NOTHING
"""

# While on, the samples' row trigger leaves round_people alone (migration 0011); on
# for the batch's samples insert only.
PEOPLE_INSERTED = "SELECT set_config('screening.people_inserted', $1, true)"

# The applied samples, in the order they were taken, with the ids their claims drew.
BATCH_INSERT_SAMPLES = """
    INSERT INTO samples (id, round_id, tube_serial, resident_id, kind, position, sampled_at)
    SELECT s.id, $1, s.serial, s.resident_id, s.kind, s.position, s.at
    FROM unnest($2::bigint[], $3::bigint[], $4::bigint[], $5::text[], $6::int[],
                $7::timestamptz[]) AS s(id, serial, resident_id, kind, position, at)
"""

BATCH_UPDATE_TUBES = """
    UPDATE tubes t SET count = u.count, state = u.state,
           sealed_at = CASE WHEN u.state = 'sealed' THEN COALESCE(t.sealed_at, u.sealed_at)
                            ELSE t.sealed_at END
    FROM unnest($1::bigint[], $2::int[], $3::text[], $4::timestamptz[])
         AS u(serial, count, state, sealed_at)
    WHERE t.serial = u.serial
"""

BATCH_RELEASE = "DELETE FROM applied_events WHERE round_id = $1 AND event_id = ANY($2::text[])"
