"""the online scan's write in one call: claim, open, take a slot, link

Revision ID: 0010
Revises: 0009

``scan_take_slot`` does, in one statement, what the online scan wrote in three or
four (issue 15: each round trip costs the service more CPU than the statement costs
PostgreSQL): claim the ``event_id`` in ``applied_events`` (when there is one), open
a brand-new tube (when the caller saw none), take a slot with the conditional
``UPDATE ... WHERE state = 'open' AND count < capacity AND kind = ...`` (the SQL form
of ``pooling.tubes.TubeSlots.refusal``), store the sample and link the event to it.

Outcomes:
- a row ``('taken', sample id, position, capacity)``;
- a row ``('replay', NULL, NULL, NULL)``: the event was claimed before (by an earlier
  or a concurrent request); nothing was written, the caller answers as the first time;
- SQLSTATE ``SC001`` raised: the tube would not take the swab after all (another scan
  got there first). Raising undoes the whole statement, claim and new tube included,
  so a refused scan leaves nothing; the caller reads the tube again to say why.

Lock order as everywhere (screening.sampling.queries): the claim, then the tube row,
then the counter rows the ``samples`` triggers touch.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TAKE_SLOT = """
CREATE FUNCTION scan_take_slot(
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


def upgrade() -> None:
    op.execute(TAKE_SLOT)


def downgrade() -> None:
    op.execute(
        "DROP FUNCTION scan_take_slot(integer, bigint, bigint, text, text, text, integer, integer)"
    )
