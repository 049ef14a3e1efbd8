"""progress counters

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 09:18:40.033863
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# The counters move in the statements that change tubes and samples: statement-level
# triggers with transition tables, so a 210,000-tube upload adds one aggregated upsert,
# not 210,000. Rows are upserted in key order so concurrent writers lock them alike.
STATES = ("open", "sealed", "packed", "in_transit", "received", "resulted")
CALLS = ("negative", "positive", "suspicious", "invalid")
COUNTED = (*STATES, *CALLS, "single_positive")


def _deltas(alias: str, sign: str) -> str:
    """One tube row's contribution to every counter, as +1/0 (or -1/0) columns."""
    parts = [f"{sign}(({alias}.state = '{s}')::int) AS {s}" for s in STATES]
    parts += [f"{sign}((coalesce({alias}.result_call, '') = '{c}')::int) AS {c}" for c in CALLS]
    parts.append(
        f"{sign}(({alias}.kind = 'single'"
        f" AND coalesce({alias}.result_call, '') IN ('positive', 'suspicious'))::int)"
        " AS single_positive"
    )
    return ", ".join(parts)


def _upsert(rows: str) -> str:
    """Add the per-tube contributions in ``rows`` to ``progress_counts``."""
    columns = ", ".join(COUNTED)
    sums = ", ".join(f"sum({c})" for c in COUNTED)
    sets = ", ".join(f"{c} = p.{c} + EXCLUDED.{c}" for c in COUNTED)
    return f"""
    INSERT INTO progress_counts AS p (round_id, sampling_point_id, lab_id, {columns})
    SELECT round_id, sampling_point_id, lab_id, {sums}
    FROM ({rows}) d
    GROUP BY round_id, sampling_point_id, lab_id
    ORDER BY round_id, sampling_point_id, lab_id
    ON CONFLICT (round_id, sampling_point_id, lab_id) DO UPDATE SET {sets}
    """


_KEY = "{a}.round_id, {a}.sampling_point_id, coalesce({a}.lab_id, 0) AS lab_id"
_CHANGED = "(o.state, o.lab_id, o.result_call) IS DISTINCT FROM (n.state, n.lab_id, n.result_call)"
_PAIRS = "old_rows o JOIN new_rows n ON n.serial = o.serial"
_BUCKET = "greatest(0, floor(extract(epoch FROM {a}.resulted_at - {a}.sealed_at) / 300))::int"

TRIGGERS = f"""
--
CREATE FUNCTION progress_tubes_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    {_upsert(f"SELECT {_KEY.format(a='n')}, {_deltas('n', '+')} FROM new_rows n")};
    RETURN NULL;
END $$;
--
CREATE FUNCTION progress_tubes_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    {
    _upsert(
        f"SELECT {_KEY.format(a='o')}, {_deltas('o', '-')} FROM {_PAIRS} WHERE {_CHANGED}"
        f" UNION ALL"
        f" SELECT {_KEY.format(a='n')}, {_deltas('n', '+')} FROM {_PAIRS} WHERE {_CHANGED}"
    )
};
    INSERT INTO turnaround_counts AS t (round_id, lab_id, bucket, n)
    SELECT n.round_id, coalesce(n.lab_id, 0), {_BUCKET.format(a="n")}, count(*)
    FROM {_PAIRS}
    WHERE o.state <> 'resulted' AND n.state = 'resulted' AND n.sealed_at IS NOT NULL
    GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
    ON CONFLICT (round_id, lab_id, bucket) DO UPDATE SET n = t.n + EXCLUDED.n;
    RETURN NULL;
END $$;
--
CREATE FUNCTION progress_samples_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO progress_counts AS p (round_id, sampling_point_id, lab_id, registered)
    SELECT t.round_id, t.sampling_point_id, 0, count(*)
    FROM new_rows s JOIN tubes t ON t.serial = s.tube_serial
    GROUP BY 1, 2 ORDER BY 1, 2
    ON CONFLICT (round_id, sampling_point_id, lab_id) DO UPDATE
        SET registered = p.registered + EXCLUDED.registered;
    RETURN NULL;
END $$;
--
CREATE TRIGGER progress_tubes_inserted AFTER INSERT ON tubes
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION progress_tubes_inserted();
--
CREATE TRIGGER progress_tubes_updated AFTER UPDATE ON tubes
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION progress_tubes_updated();
--
CREATE TRIGGER progress_samples_inserted AFTER INSERT ON samples
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION progress_samples_inserted();
"""

# counters for what the database already holds when the migration runs
BACKFILL = f"""
{_upsert(f"SELECT {_KEY.format(a='n')}, {_deltas('n', '+')} FROM tubes n")}
--
INSERT INTO progress_counts AS p (round_id, sampling_point_id, lab_id, registered)
SELECT t.round_id, t.sampling_point_id, 0, count(*)
FROM samples s JOIN tubes t ON t.serial = s.tube_serial
GROUP BY 1, 2 ORDER BY 1, 2
ON CONFLICT (round_id, sampling_point_id, lab_id) DO UPDATE
    SET registered = p.registered + EXCLUDED.registered;
--
INSERT INTO turnaround_counts (round_id, lab_id, bucket, n)
SELECT n.round_id, coalesce(n.lab_id, 0), {_BUCKET.format(a="n")}, count(*)
FROM tubes n WHERE n.state = 'resulted' AND n.sealed_at IS NOT NULL
GROUP BY 1, 2, 3;
"""
DROP = """
DROP TRIGGER progress_samples_inserted ON samples;
DROP TRIGGER progress_tubes_updated ON tubes;
DROP TRIGGER progress_tubes_inserted ON tubes;
DROP FUNCTION progress_samples_inserted();
DROP FUNCTION progress_tubes_updated();
DROP FUNCTION progress_tubes_inserted();
"""


def upgrade() -> None:
    op.create_table(
        "progress_counts",
        sa.Column("round_id", sa.Integer(), nullable=False),
        sa.Column("sampling_point_id", sa.Integer(), nullable=False),
        sa.Column("lab_id", sa.Integer(), nullable=False),
        sa.Column("registered", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("open", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("sealed", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("packed", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("in_transit", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("received", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("resulted", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("negative", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("positive", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("suspicious", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("invalid", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("single_positive", sa.BigInteger(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint(
            "round_id", "sampling_point_id", "lab_id", name=op.f("pk_progress_counts")
        ),
    )
    op.create_table(
        "turnaround_counts",
        sa.Column("round_id", sa.Integer(), nullable=False),
        sa.Column("lab_id", sa.Integer(), nullable=False),
        sa.Column("bucket", sa.Integer(), nullable=False),
        sa.Column("n", sa.BigInteger(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("round_id", "lab_id", "bucket", name=op.f("pk_turnaround_counts")),
    )
    for statement in (*TRIGGERS.split("\n--\n"), *BACKFILL.split("\n--\n")):
        if statement.strip():
            op.execute(statement)


def downgrade() -> None:
    for statement in DROP.strip().splitlines():
        op.execute(statement)
    op.drop_table("turnaround_counts")
    op.drop_table("progress_counts")
