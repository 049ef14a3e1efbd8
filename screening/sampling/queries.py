"""Named SQL for sampling, shared by the online scan and the offline replay.

Lock order (issue 16: a sync batch deadlocked against scans and seals): every
request that changes tubes locks **tube rows first, then progress counter rows**.
Counter rows (``progress_counts``) are locked by the triggers on ``tubes`` and
``samples`` inserts and state changes, so:
- a scan updates its tube (the conditional ``UPDATE`` locks it) before it inserts
  the sample (which locks the counter row);
- a seal locks its tube ``FOR UPDATE`` before changing its state;
- a sync batch locks every existing tube of the batch ``FOR UPDATE`` in serial order
  before it inserts any tube or sample; the tubes it opens are inserted after that.
A tube that does not exist yet cannot be locked; it is created by the first scan (a
scan inserts it before its counter row is touched by anything else of its own) or by
a sync batch, which learns from ``ON CONFLICT`` that someone else opened it first
and then runs the whole transaction again (:class:`screening.db.RetryTransaction`).
A deadlock or serialization failure that still happens is retried the same way.
"""

from __future__ import annotations

from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY, BIGINT, INTEGER, TEXT, TIMESTAMP

# A person in one of these is "already sampled" for this round: a pool sample whose
# tube's result is not invalid (an invalid pool means: swab them again).
LIVE_POOL_SAMPLE = "s2.kind = 'pool' AND t2.result_call IS DISTINCT FROM 'invalid'"

# A person who must be swabbed alone: a member of an open de-pool case still to be
# recalled (or recalled again after an invalid single result).
NEEDS_SINGLE = """EXISTS (SELECT 1 FROM retest_members m JOIN retest_cases c ON c.id = m.case_id
               WHERE m.resident_id = {resident} AND c.status = 'open'
                 AND m.status IN ('to-recall', 'invalid'))"""

# Everything an online scan needs to decide, in one round trip.
SCAN_CONTEXT = text(
    f"""
    SELECT r.status AS round_status, r.closed_at,
           p.id AS resident_id, p.name_enc,
           {NEEDS_SINGLE.format(resident="p.id")} AS needs_single,
           e.barcode AS earlier_tube, e.point AS earlier_point, e.sampled_at AS earlier_at,
           t.serial IS NOT NULL AS tube_exists, t.round_id AS tube_round,
           t.sampling_point_id AS tube_point, t.kind AS tube_kind, t.state AS tube_state,
           t.count AS tube_count, t.capacity AS tube_capacity,
           EXISTS (SELECT 1 FROM samples s WHERE s.tube_serial = :serial
                   AND s.resident_id = p.id) AS member,
           br.sampling_point_id AS range_point,
           COALESCE(rd.pool_size, r.pool_size) AS district_pool
    FROM rounds r
    LEFT JOIN residents p ON p.code = :code
    LEFT JOIN tubes t ON t.serial = :serial
    LEFT JOIN LATERAL (
        SELECT t2.barcode, sp2.code AS point, s2.sampled_at
        FROM samples s2 JOIN tubes t2 ON t2.serial = s2.tube_serial
        JOIN sampling_points sp2 ON sp2.id = t2.sampling_point_id
        WHERE s2.resident_id = p.id AND s2.round_id = r.id AND s2.tube_serial <> :serial
          AND {LIVE_POOL_SAMPLE}
        ORDER BY s2.id LIMIT 1
    ) e ON true
    LEFT JOIN LATERAL (
        SELECT sampling_point_id FROM barcode_ranges
        WHERE round_id = r.id AND first_serial <= :serial AND last_serial >= :serial
        LIMIT 1
    ) br ON true
    LEFT JOIN sampling_points sp ON sp.id = br.sampling_point_id
    LEFT JOIN round_districts rd ON rd.round_id = r.id AND rd.district_id = sp.district_id
    WHERE r.id = :round_id
    """
)

# The same facts per person for a whole batch: code -> id, needs single, and the
# live pool tubes of this round they are in already.
BATCH_RESIDENTS = text(
    f"""
    SELECT p.code, p.id, {NEEDS_SINGLE.format(resident="p.id")} AS needs_single
    FROM residents p WHERE p.code = ANY(:codes)
    """
).bindparams(bindparam("codes", type_=ARRAY(TEXT)))

BATCH_EARLIER = text(
    f"""
    SELECT DISTINCT ON (s2.resident_id) s2.resident_id, t2.barcode, sp2.code AS point,
           s2.sampled_at
    FROM samples s2 JOIN tubes t2 ON t2.serial = s2.tube_serial
    JOIN sampling_points sp2 ON sp2.id = t2.sampling_point_id
    WHERE s2.resident_id = ANY(:residents) AND s2.round_id = :round_id AND {LIVE_POOL_SAMPLE}
    ORDER BY s2.resident_id, s2.id
    """
).bindparams(bindparam("residents", type_=ARRAY(BIGINT)))

# No conflict target: both unique indexes (serial, barcode) are arbiters, so a first
# scan racing another for a brand-new tube waits for it and then finds the tube,
# instead of failing on ``uq_tubes_barcode`` (issue 11, "Under concurrency").
CREATE_TUBE = text(
    """
    INSERT INTO tubes (serial, barcode, round_id, sampling_point_id, kind, capacity, count, state)
    VALUES (:serial, :barcode, :round_id, :point, :kind, :capacity, 0, 'open')
    ON CONFLICT DO NOTHING
    """
)

# The online scan's write, one statement: take a slot if the tube accepts the swab
# (the SQL form of pooling.tubes.TubeSlots.refusal), store the sample, and link the
# event to it. No row back means refused; the caller asks why.
TAKE_SLOT = text(
    """
    WITH slot AS (
        UPDATE tubes SET count = count + 1,
               state = CASE WHEN count + 1 >= capacity THEN 'sealed' ELSE state END,
               sealed_at = CASE WHEN count + 1 >= capacity THEN now() ELSE sealed_at END
        WHERE serial = :serial AND state = 'open' AND count < capacity AND kind = :kind
        RETURNING serial, count, capacity
    ), taken AS (
        INSERT INTO samples (round_id, tube_serial, resident_id, kind, position)
        SELECT :round_id, serial, :resident_id, :kind, count FROM slot
        ON CONFLICT ON CONSTRAINT uq_samples_tube_resident DO NOTHING
        RETURNING id, position
    ), linked AS (
        UPDATE applied_events e SET sample_id = taken.id FROM taken
        WHERE e.round_id = :round_id AND e.event_id = :event_id
    )
    SELECT taken.id, taken.position, (SELECT capacity FROM slot) AS capacity FROM taken
    """
)

TUBE_NOW = text(
    """
    SELECT t.barcode, t.kind, t.state, t.count AS tube_count, t.capacity,
           EXISTS (SELECT 1 FROM samples s WHERE s.tube_serial = t.serial
                   AND s.resident_id = :resident_id) AS member
    FROM tubes t WHERE t.serial = :serial
    """
)

CLAIM_EVENT = text(
    """
    INSERT INTO applied_events (round_id, event_id, type, tube_serial)
    VALUES (:round_id, :event_id, :type, :serial)
    ON CONFLICT DO NOTHING
    RETURNING event_id
    """
)

REPLAY = text(
    """
    SELECT e.type, t.barcode, t.kind, t.capacity, t.count AS tube_count, s.position,
           p.name_enc
    FROM applied_events e
    JOIN tubes t ON t.serial = e.tube_serial
    LEFT JOIN samples s ON s.id = e.sample_id
    LEFT JOIN residents p ON p.id = s.resident_id
    WHERE e.round_id = :round_id AND e.event_id = :event_id
    """
)

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

BATCH_CLAIM = text(
    """
    INSERT INTO applied_events (round_id, event_id, type, tube_serial)
    SELECT :round_id, e.event_id, e.type, e.serial
    FROM unnest(:event_ids, :types, :serials) AS e(event_id, type, serial)
    ORDER BY e.event_id
    ON CONFLICT DO NOTHING
    RETURNING event_id
    """
).bindparams(
    bindparam("event_ids", type_=ARRAY(TEXT)),
    bindparam("types", type_=ARRAY(TEXT)),
    bindparam("serials", type_=ARRAY(BIGINT)),
)

BATCH_MEMBERS = text(
    "SELECT tube_serial, resident_id FROM samples WHERE tube_serial = ANY(:serials)"
).bindparams(bindparam("serials", type_=ARRAY(BIGINT)))

# Tubes opened by the batch, inserted with their final count and state (after the
# existing tubes are locked: see the lock order above).
BATCH_CREATE_TUBES = text(
    """
    INSERT INTO tubes (serial, barcode, round_id, sampling_point_id, kind, capacity, count,
                       state, opened_at, sealed_at)
    SELECT t.serial, t.barcode, :round_id, t.point, t.kind, t.capacity, t.count, t.state,
           t.opened_at, t.sealed_at
    FROM unnest(:serials, :barcodes, :points, :kinds, :capacities, :counts, :states,
                :opened_ats, :sealed_ats)
         AS t(serial, barcode, point, kind, capacity, count, state, opened_at, sealed_at)
    ORDER BY t.serial
    ON CONFLICT DO NOTHING
    RETURNING serial
    """
).bindparams(
    bindparam("serials", type_=ARRAY(BIGINT)),
    bindparam("barcodes", type_=ARRAY(TEXT)),
    bindparam("points", type_=ARRAY(INTEGER)),
    bindparam("kinds", type_=ARRAY(TEXT)),
    bindparam("capacities", type_=ARRAY(INTEGER)),
    bindparam("counts", type_=ARRAY(INTEGER)),
    bindparam("states", type_=ARRAY(TEXT)),
    bindparam("opened_ats", type_=ARRAY(TIMESTAMP(timezone=True))),
    bindparam("sealed_ats", type_=ARRAY(TIMESTAMP(timezone=True))),
)

BATCH_INSERT_SAMPLES = text(
    """
    INSERT INTO samples (round_id, tube_serial, resident_id, kind, position, sampled_at)
    SELECT :round_id, s.serial, s.resident_id, s.kind, s.position, s.at
    FROM unnest(:serials, :residents, :kinds, :positions, :ats)
         AS s(serial, resident_id, kind, position, at)
    RETURNING id, tube_serial, resident_id
    """
).bindparams(
    bindparam("serials", type_=ARRAY(BIGINT)),
    bindparam("residents", type_=ARRAY(BIGINT)),
    bindparam("kinds", type_=ARRAY(TEXT)),
    bindparam("positions", type_=ARRAY(INTEGER)),
    bindparam("ats", type_=ARRAY(TIMESTAMP(timezone=True))),
)

BATCH_UPDATE_TUBES = text(
    """
    UPDATE tubes t SET count = u.count, state = u.state,
           sealed_at = CASE WHEN u.state = 'sealed' THEN COALESCE(t.sealed_at, u.sealed_at)
                            ELSE t.sealed_at END
    FROM unnest(:serials, :counts, :states, :sealed_ats) AS u(serial, count, state, sealed_at)
    WHERE t.serial = u.serial
    """
).bindparams(
    bindparam("serials", type_=ARRAY(BIGINT)),
    bindparam("counts", type_=ARRAY(INTEGER)),
    bindparam("states", type_=ARRAY(TEXT)),
    bindparam("sealed_ats", type_=ARRAY(TIMESTAMP(timezone=True))),
)

BATCH_LINK_EVENTS = text(
    """
    UPDATE applied_events e SET sample_id = u.sample_id
    FROM unnest(:event_ids, :sample_ids) AS u(event_id, sample_id)
    WHERE e.round_id = :round_id AND e.event_id = u.event_id
    """
).bindparams(
    bindparam("event_ids", type_=ARRAY(TEXT)), bindparam("sample_ids", type_=ARRAY(BIGINT))
)

BATCH_RELEASE = text(
    "DELETE FROM applied_events WHERE round_id = :round_id AND event_id = ANY(:event_ids)"
).bindparams(bindparam("event_ids", type_=ARRAY(TEXT)))
