"""progress that tells the truth: people, not samples; pools apart from singles; each
lab's own turnaround

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 16:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
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
STATES = ("open", "sealed", "packed", "in_transit", "received", "resulted")
CALLS = ("negative", "positive", "suspicious", "invalid")
POOLED = "{a}.kind = 'pool' AND {a}.capacity > 1"


def _counted(new: bool) -> tuple[str, ...]:
    extra = ("pool_positive", "pool_suspicious") if new else ()
    return (*STATES, *CALLS, "single_positive", *extra)


def _deltas(alias: str, sign: str, new: bool) -> str:
    """One tube row's contribution to every counter, as +1/0 (or -1/0) columns."""
    parts = [f"{sign}(({alias}.state = '{s}')::int) AS {s}" for s in STATES]
    parts += [f"{sign}((coalesce({alias}.result_call, '') = '{c}')::int) AS {c}" for c in CALLS]
    parts.append(
        f"{sign}(({alias}.kind = 'single'"
        f" AND coalesce({alias}.result_call, '') IN ('positive', 'suspicious'))::int)"
        " AS single_positive"
    )
    if new:
        pooled = POOLED.format(a=alias)
        parts += [
            f"{sign}(({pooled} AND coalesce({alias}.result_call, '') = '{c}')::int) AS pool_{c}"
            for c in ("positive", "suspicious")
        ]
    return ", ".join(parts)


def _upsert(rows: str, new: bool) -> str:
    """Add the per-tube contributions in ``rows`` to ``progress_counts``."""
    counted = _counted(new)
    columns = ", ".join(counted)
    sums = ", ".join(f"sum({c})" for c in counted)
    sets = ", ".join(f"{c} = p.{c} + EXCLUDED.{c}" for c in counted)
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
_BUCKET = "greatest(0, floor(extract(epoch FROM {a}.resulted_at - {a}.{since}) / 300))::int"


def _tube_functions(new: bool) -> str:
    lab_turnaround = f"""
    INSERT INTO lab_turnaround_counts AS t (round_id, lab_id, bucket, n)
    SELECT n.round_id, coalesce(n.lab_id, 0), {_BUCKET.format(a="n", since="received_at")},
           count(*)
    FROM {_PAIRS}
    WHERE o.state <> 'resulted' AND n.state = 'resulted' AND n.received_at IS NOT NULL
    GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
    ON CONFLICT (round_id, lab_id, bucket) DO UPDATE SET n = t.n + EXCLUDED.n;"""
    return f"""
--
CREATE OR REPLACE FUNCTION progress_tubes_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    {_upsert(f"SELECT {_KEY.format(a='n')}, {_deltas('n', '+', new)} FROM new_rows n", new)};
    RETURN NULL;
END $$;
--
CREATE OR REPLACE FUNCTION progress_tubes_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    {
        _upsert(
            f"SELECT {_KEY.format(a='o')}, {_deltas('o', '-', new)} FROM {_PAIRS}"
            f" WHERE {_CHANGED}"
            f" UNION ALL"
            f" SELECT {_KEY.format(a='n')}, {_deltas('n', '+', new)} FROM {_PAIRS}"
            f" WHERE {_CHANGED}",
            new,
        )
    };
    INSERT INTO turnaround_counts AS t (round_id, lab_id, bucket, n)
    SELECT n.round_id, coalesce(n.lab_id, 0), {_BUCKET.format(a="n", since="sealed_at")},
           count(*)
    FROM {_PAIRS}
    WHERE o.state <> 'resulted' AND n.state = 'resulted' AND n.sealed_at IS NOT NULL
    GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
    ON CONFLICT (round_id, lab_id, bucket) DO UPDATE SET n = t.n + EXCLUDED.n;{
        lab_turnaround if new else ""
    }
    RETURN NULL;
END $$;
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
UPDATE progress_counts p SET pool_positive = f.positive, pool_suspicious = f.suspicious
FROM (
    SELECT round_id, sampling_point_id, coalesce(lab_id, 0) AS lab_id,
           count(*) FILTER (WHERE result_call = 'positive') AS positive,
           count(*) FILTER (WHERE result_call = 'suspicious') AS suspicious
    FROM tubes n WHERE {POOLED.format(a="n")} GROUP BY 1, 2, 3
) f
WHERE (p.round_id, p.sampling_point_id, p.lab_id) = (f.round_id, f.sampling_point_id, f.lab_id)
--
INSERT INTO lab_turnaround_counts (round_id, lab_id, bucket, n)
SELECT n.round_id, coalesce(n.lab_id, 0), {_BUCKET.format(a="n", since="received_at")}, count(*)
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
    _run(_tube_functions(new=True))
    _run(SAMPLES)
    _run(BACKFILL)


def downgrade() -> None:
    _run(OLD_SAMPLES)
    _run(_tube_functions(new=False))
    op.drop_table("lab_turnaround_counts")
    for column in ("pool_suspicious", "pool_positive", "people"):
        op.drop_column("progress_counts", column)
    op.drop_table("round_people")
