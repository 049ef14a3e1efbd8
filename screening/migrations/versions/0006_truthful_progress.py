"""progress that tells the truth: people, not samples; pools apart from singles; each
lab's own turnaround

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23 16:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# People, not samples. ``round_people`` holds each person's first sample of a round
# (primary key round + person), written by a BEFORE INSERT row trigger on ``samples``
# with ON CONFLICT DO NOTHING: of two transactions sampling one person at once, the
# second waits for the first and counts only if the first rolls back, so the figure is
# exact under any concurrency. A person counts at the point of their first sample, so
# points add up to districts and districts to the round. No foreign keys: the sample
# row that caused the insert already checked both, and a scan should pay for one index.
#
# Lock order. A scan updates its tube row first (``UPDATE tubes ... RETURNING`` feeding
# ``INSERT INTO samples``); the person row is taken while the sample row is inserted
# (row trigger), and the counter rows only at the end of the statement (statement
# triggers fire after every row trigger of the statement). So every writer takes tube
# rows, then person rows, then counter rows, and within a statement counter rows in key
# order: no cycle between a scan that seals its tube (which moves tube counters) and
# another scan of the same person.
#
# Pools apart from singles. ``pool_positive`` / ``pool_suspicious`` count pooled tubes
# (kind ``pool`` holding more than one person: a pool of one is read as a single) by
# their latest call; singles are the rest of ``positive`` / ``suspicious``.
#
# Each lab's own turnaround: received-to-result in 5-minute buckets per lab
# (``lab_turnaround_counts``), beside the round's sealed-to-result (0004).
POOLED = "{a}.kind = 'pool' AND {a}.capacity > 1"
_KEY = "{a}.round_id, {a}.sampling_point_id, coalesce({a}.lab_id, 0) AS lab_id"
_PAIRS = "old_rows o JOIN new_rows n ON n.serial = o.serial"
_BUCKET = "greatest(0, floor(extract(epoch FROM {a}.resulted_at - {a}.received_at) / 300))::int"


def _pool_calls(alias: str, sign: str) -> str:
    """A tube row's part in the pooled-tube counters, as +1/0 (or -1/0) columns."""
    pooled = POOLED.format(a=alias)
    return ", ".join(
        f"{sign}(({pooled} AND coalesce({alias}.result_call, '') = '{c}')::int) AS pool_{c}"
        for c in ("positive", "suspicious")
    )


# A trigger of its own beside 0004's (whose functions other migrations may replace):
# named to fire after ``progress_tubes_updated`` (triggers on one event fire in name
# order), and it touches only counter rows that trigger has just locked (a changed
# lab or call is a change 0004 counts too), so it adds no lock and no lock order.
_CHANGED = "(o.lab_id, o.result_call) IS DISTINCT FROM (n.lab_id, n.result_call)"
_POOLED = f"""
INSERT INTO progress_counts AS p
        (round_id, sampling_point_id, lab_id, pool_positive, pool_suspicious)
    SELECT round_id, sampling_point_id, lab_id, sum(pool_positive), sum(pool_suspicious)
    FROM (
        SELECT {_KEY.format(a="o")}, {_pool_calls("o", "-")} FROM {_PAIRS} WHERE {_CHANGED}
        UNION ALL
        SELECT {_KEY.format(a="n")}, {_pool_calls("n", "+")} FROM {_PAIRS} WHERE {_CHANGED}
    ) d
    GROUP BY round_id, sampling_point_id, lab_id
    HAVING sum(pool_positive) <> 0 OR sum(pool_suspicious) <> 0
    ORDER BY round_id, sampling_point_id, lab_id
    ON CONFLICT (round_id, sampling_point_id, lab_id) DO UPDATE
        SET pool_positive = p.pool_positive + EXCLUDED.pool_positive,
            pool_suspicious = p.pool_suspicious + EXCLUDED.pool_suspicious
"""
_IN_LAB = f"""
INSERT INTO lab_turnaround_counts AS t (round_id, lab_id, bucket, n)
    SELECT n.round_id, coalesce(n.lab_id, 0), {_BUCKET.format(a="n")}, count(*)
    FROM {_PAIRS}
    WHERE o.state <> 'resulted' AND n.state = 'resulted' AND n.received_at IS NOT NULL
    GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
    ON CONFLICT (round_id, lab_id, bucket) DO UPDATE SET n = t.n + EXCLUDED.n
"""
TUBES = f"""
--
CREATE FUNCTION progress_tubes_updated_split() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- a plan made for a one-tube scan would nest-loop an upload's 200,000 tubes (the
    -- session keeps PL/pgSQL plans): large statements are planned afresh
    IF (SELECT count(*) FROM new_rows) > 64 THEN
        EXECUTE $sql${_POOLED}$sql$;
        EXECUTE $sql${_IN_LAB}$sql$;
    ELSE
        {_POOLED};
        {_IN_LAB};
    END IF;
    RETURN NULL;
END $$;
--
CREATE TRIGGER progress_tubes_updated_split AFTER UPDATE ON tubes
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION progress_tubes_updated_split();
"""
OLD_TUBES = """
--
DROP TRIGGER progress_tubes_updated_split ON tubes;
--
DROP FUNCTION progress_tubes_updated_split();
"""


SAMPLES = """
--
CREATE FUNCTION progress_first_sample() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO round_people (round_id, resident_id, sample_id)
    VALUES (NEW.round_id, NEW.resident_id, NEW.id)
    ON CONFLICT DO NOTHING;
    RETURN NEW;
END $$;
--
CREATE TRIGGER progress_first_sample BEFORE INSERT ON samples
    FOR EACH ROW EXECUTE FUNCTION progress_first_sample();
--
CREATE OR REPLACE FUNCTION progress_samples_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO progress_counts AS p (round_id, sampling_point_id, lab_id, registered, people)
    SELECT t.round_id, t.sampling_point_id, 0, count(*), count(f.sample_id)
    FROM new_rows s
    JOIN tubes t ON t.serial = s.tube_serial
    LEFT JOIN round_people f
        ON f.round_id = s.round_id AND f.resident_id = s.resident_id AND f.sample_id = s.id
    GROUP BY 1, 2 ORDER BY 1, 2
    ON CONFLICT (round_id, sampling_point_id, lab_id) DO UPDATE
        SET registered = p.registered + EXCLUDED.registered, people = p.people + EXCLUDED.people;
    RETURN NULL;
END $$;
"""

OLD_SAMPLES = """
--
DROP TRIGGER progress_first_sample ON samples;
--
DROP FUNCTION progress_first_sample();
--
CREATE OR REPLACE FUNCTION progress_samples_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO progress_counts AS p (round_id, sampling_point_id, lab_id, registered)
    SELECT t.round_id, t.sampling_point_id, 0, count(*)
    FROM new_rows s JOIN tubes t ON t.serial = s.tube_serial
    GROUP BY 1, 2 ORDER BY 1, 2
    ON CONFLICT (round_id, sampling_point_id, lab_id) DO UPDATE
        SET registered = p.registered + EXCLUDED.registered;
    RETURN NULL;
END $$;
"""

# figures for what the database already holds when the migration runs
BACKFILL = f"""
--
INSERT INTO round_people (round_id, resident_id, sample_id)
SELECT DISTINCT ON (round_id, resident_id) round_id, resident_id, id
FROM samples ORDER BY round_id, resident_id, id
--
UPDATE progress_counts p SET people = f.n
FROM (
    SELECT t.round_id, t.sampling_point_id, count(*) AS n
    FROM round_people f JOIN samples s ON s.id = f.sample_id
    JOIN tubes t ON t.serial = s.tube_serial
    GROUP BY 1, 2
) f
WHERE p.round_id = f.round_id AND p.sampling_point_id = f.sampling_point_id AND p.lab_id = 0
--
INSERT INTO progress_counts AS p
    (round_id, sampling_point_id, lab_id, pool_positive, pool_suspicious)
SELECT round_id, sampling_point_id, coalesce(lab_id, 0),
       count(*) FILTER (WHERE result_call = 'positive'),
       count(*) FILTER (WHERE result_call = 'suspicious')
FROM tubes n WHERE {POOLED.format(a="n")} AND result_call IN ('positive', 'suspicious')
GROUP BY 1, 2, 3
ON CONFLICT (round_id, sampling_point_id, lab_id) DO UPDATE
    SET pool_positive = EXCLUDED.pool_positive, pool_suspicious = EXCLUDED.pool_suspicious
--
INSERT INTO lab_turnaround_counts (round_id, lab_id, bucket, n)
SELECT n.round_id, coalesce(n.lab_id, 0), {_BUCKET.format(a="n")}, count(*)
FROM tubes n WHERE n.state = 'resulted' AND n.received_at IS NOT NULL
GROUP BY 1, 2, 3
"""


def _run(script: str) -> None:
    for statement in script.split("\n--\n"):
        if statement.strip():
            op.execute(statement)


def upgrade() -> None:
    op.create_table(
        "round_people",
        sa.Column("round_id", sa.Integer(), nullable=False),
        sa.Column("resident_id", sa.BigInteger(), nullable=False),
        sa.Column("sample_id", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("round_id", "resident_id", name=op.f("pk_round_people")),
    )
    for column in ("people", "pool_positive", "pool_suspicious"):
        op.add_column(
            "progress_counts",
            sa.Column(column, sa.BigInteger(), server_default="0", nullable=False),
        )
    op.create_table(
        "lab_turnaround_counts",
        sa.Column("round_id", sa.Integer(), nullable=False),
        sa.Column("lab_id", sa.Integer(), nullable=False),
        sa.Column("bucket", sa.Integer(), nullable=False),
        sa.Column("n", sa.BigInteger(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint(
            "round_id", "lab_id", "bucket", name=op.f("pk_lab_turnaround_counts")
        ),
    )
    _run(TUBES)
    _run(SAMPLES)
    _run(BACKFILL)


def downgrade() -> None:
    _run(OLD_SAMPLES)
    _run(OLD_TUBES)
    op.drop_table("lab_turnaround_counts")
    for column in ("pool_suspicious", "pool_positive", "people"):
        op.drop_column("progress_counts", column)
    op.drop_table("round_people")
