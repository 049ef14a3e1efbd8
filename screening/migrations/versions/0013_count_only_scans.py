"""a scan that only counts one more swab into an open tube skips the tube triggers

Revision ID: 0013
Revises: 0012

Nine scans in ten only add one to an open tube's ``count``. The three statement
triggers on ``UPDATE tubes`` (the progress counters of 0004 and 0006, the feed marks of
0008) count changes of a tube's state, lab, call or result version, so for those scans
they find nothing, but each still ran its PL/pgSQL and its joins of the transition
tables: most of the slot statement's 0.7 ms of PostgreSQL's 1.0 ms a scan (issue 15,
``pg_stat_statements``). ``scan_take_slot`` now takes such a slot with an ``UPDATE`` that
sets ``count`` alone, with ``screening.tube_count_only`` set to ``on`` for that statement
only, and the three triggers fire ``WHEN`` it is not ``on``: skipped exactly when they
would have done nothing. The scan that fills (seals) a tube, and every other writer of
tubes, goes through the triggers as before, and in the same statement as before, so
locks are still taken tube, then person, then counters.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TRIGGERS = ("progress_tubes_updated", "progress_tubes_updated_split", "feed_mark_tubes")
NOT_COUNT_ONLY = "current_setting('screening.tube_count_only', true) IS DISTINCT FROM 'on'"


def _tube_triggers(when: str) -> list[str]:
    return [
        statement
        for name in TRIGGERS
        for statement in (
            f"DROP TRIGGER {name} ON tubes",
            f"CREATE TRIGGER {name} AFTER UPDATE ON tubes"
            " REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows"
            f" FOR EACH STATEMENT {when} EXECUTE FUNCTION {name}()",
        )
    ]


_HEAD = """
CREATE OR REPLACE FUNCTION scan_take_slot(
    p_round integer, p_serial bigint, p_resident bigint, p_kind text, p_event text,
    p_barcode text, p_point integer, p_capacity integer,
    OUT outcome text, OUT taken_id bigint, OUT slot_position integer,
    OUT slot_capacity integer
) LANGUAGE plpgsql AS $$
BEGIN
    IF p_event IS NOT NULL THEN
        INSERT INTO applied_events (round_id, event_id, type, tube_serial)
        VALUES (p_round, p_event, 'sample', p_serial)
        ON CONFLICT DO NOTHING;
        IF NOT FOUND THEN
            outcome := 'replay';
            RETURN;
        END IF;
    END IF;
    IF p_barcode IS NOT NULL THEN
        -- no conflict target: both unique indexes (serial, barcode) are arbiters, so a
        -- first scan racing another for a brand-new tube waits for it, then finds it
        INSERT INTO tubes (serial, barcode, round_id, sampling_point_id, kind, capacity,
                           count, state)
        VALUES (p_serial, p_barcode, p_round, p_point, p_kind, p_capacity, 0, 'open')
        ON CONFLICT DO NOTHING;
    END IF;
"""
_FILL_OR_SEAL = """
    WITH slot AS (
        UPDATE tubes SET count = count + 1,
               state = CASE WHEN count + 1 >= capacity THEN 'sealed' ELSE state END,
               sealed_at = CASE WHEN count + 1 >= capacity THEN now() ELSE sealed_at END
        WHERE serial = p_serial AND state = 'open' AND count < capacity AND kind = p_kind
        RETURNING serial, count, capacity
    ), taken AS (
        INSERT INTO samples (round_id, tube_serial, resident_id, kind, position)
        SELECT p_round, slot.serial, p_resident, p_kind, slot.count FROM slot
        ON CONFLICT ON CONSTRAINT uq_samples_tube_resident DO NOTHING
        RETURNING id, position
    )
    SELECT taken.id, taken.position, (SELECT capacity FROM slot)
    INTO taken_id, slot_position, slot_capacity FROM taken;
"""
_TAIL = """
    IF taken_id IS NULL THEN
        RAISE EXCEPTION 'tube % did not take the swab', p_serial USING ERRCODE = 'SC001';
    END IF;
    IF p_event IS NOT NULL THEN
        UPDATE applied_events SET sample_id = taken_id
        WHERE round_id = p_round AND event_id = p_event;
    END IF;
    outcome := 'taken';
END
$$
"""
COUNT_ONLY_FIRST = f"""
    -- a slot that leaves the tube open: count alone, the tube triggers skipped (they
    -- would find no state, lab, call or version changed)
    PERFORM set_config('screening.tube_count_only', 'on', true);
    UPDATE tubes SET count = count + 1
    WHERE serial = p_serial AND state = 'open' AND count + 1 < capacity AND kind = p_kind
    RETURNING count, capacity INTO slot_position, slot_capacity;
    PERFORM set_config('screening.tube_count_only', 'off', true);
    IF slot_position IS NOT NULL THEN
        INSERT INTO samples (round_id, tube_serial, resident_id, kind, position)
        VALUES (p_round, p_serial, p_resident, p_kind, slot_position)
        ON CONFLICT ON CONSTRAINT uq_samples_tube_resident DO NOTHING
        RETURNING id INTO taken_id;
    ELSE  -- the last slot (the tube seals), or a tube that cannot take the swab
        {_FILL_OR_SEAL}
    END IF;
"""


def upgrade() -> None:
    for statement in _tube_triggers(f"WHEN ({NOT_COUNT_ONLY})"):
        op.execute(statement)
    op.execute(_HEAD + COUNT_ONLY_FIRST + _TAIL)


def downgrade() -> None:
    op.execute(_HEAD + _FILL_OR_SEAL + _TAIL)
    for statement in _tube_triggers(""):
        op.execute(statement)
