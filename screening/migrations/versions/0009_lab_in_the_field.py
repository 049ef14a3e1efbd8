"""the lab in the field: held rows, plate re-runs, rejected tubes, standing rules

Revision ID: 0009
Revises: 0008

- Tubes gain two states: ``rerun`` (on a plate whose controls failed, waiting for the
  plate to be run again; residents see pending) and ``rejected`` (unusable at
  receipt: leaking, insufficient, ...; its people must be sampled again).
- ``progress_counts`` counts both states; ``single_positive`` (the dashboard's
  confirmed positives) now counts single tubes, and pools of one, whose latest call
  is ``positive``: a suspicious single is re-tested, not confirmed. The tube-update
  trigger plans large statements afresh (see ``LARGE_STATEMENT``).
- ``held_results``: result rows for tubes the lab had not received yet, applied at
  receipt. ``plate_reruns`` / ``plate_rerun_tubes``: failed plates waiting for a
  re-run, and what was on them. ``tube_rejections``: why a tube was rejected.
- ``uploads``: the same bytes with another ``plate`` or ``format`` field are another
  upload; who uploaded is kept.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_STATES = ("open", "sealed", "packed", "in_transit", "received", "resulted")
CALLS = ("negative", "positive", "suspicious", "invalid")
SINGLE = "({a}.kind = 'single' OR {a}.capacity = 1)"


def _states_check(states: Sequence[str]) -> str:
    return "state IN (" + ", ".join(f"'{s}'" for s in states) + ")"


def _deltas(alias: str, sign: str, states: Sequence[str], positive: str) -> str:
    """One tube row's contribution to every counter, as +1/0 (or -1/0) columns."""
    parts = [f"{sign}(({alias}.state = '{s}')::int) AS {s}" for s in states]
    parts += [f"{sign}((coalesce({alias}.result_call, '') = '{c}')::int) AS {c}" for c in CALLS]
    parts.append(f"{sign}({positive.format(a=alias)})::int AS single_positive")
    return ", ".join(parts)


def _upsert(rows: str, counted: Sequence[str]) -> str:
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
_BUCKET = "greatest(0, floor(extract(epoch FROM {a}.resulted_at - {a}.sealed_at) / 300))::int"


# PL/pgSQL caches a trigger statement's plan for the session, planned with the sizes
# of the first call's transition tables. After a statement that moved no tube or one
# (a scan, an empty re-run marking), that plan nest-loops old_rows x new_rows, and an
# upload's 200,000 tubes then take hours on that connection (measured: 20,000 tubes,
# 118 s instead of 1 s). Large statements are planned afresh with their own sizes.
LARGE_STATEMENT = 64


def _functions(states: Sequence[str], positive: str) -> list[str]:
    """The two tube triggers' functions of migration 0004, over ``states``."""
    counted = (*states, *CALLS, "single_positive")
    inserted = _upsert(
        f"SELECT {_KEY.format(a='n')}, {_deltas('n', '+', states, positive)} FROM new_rows n",
        counted,
    )
    updated = _upsert(
        f"SELECT {_KEY.format(a='o')}, {_deltas('o', '-', states, positive)} FROM {_PAIRS}"
        f" WHERE {_CHANGED} UNION ALL"
        f" SELECT {_KEY.format(a='n')}, {_deltas('n', '+', states, positive)} FROM {_PAIRS}"
        f" WHERE {_CHANGED}",
        counted,
    )
    turnaround = f"""
    INSERT INTO turnaround_counts AS t (round_id, lab_id, bucket, n)
    SELECT n.round_id, coalesce(n.lab_id, 0), {_BUCKET.format(a="n")}, count(*)
    FROM {_PAIRS}
    WHERE o.state <> 'resulted' AND n.state = 'resulted' AND n.sealed_at IS NOT NULL
    GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
    ON CONFLICT (round_id, lab_id, bucket) DO UPDATE SET n = t.n + EXCLUDED.n
    """
    return [
        f"""CREATE OR REPLACE FUNCTION progress_tubes_inserted() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            {inserted};
            RETURN NULL;
        END $$""",
        f"""CREATE OR REPLACE FUNCTION progress_tubes_updated() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            IF (SELECT count(*) FROM new_rows) > {LARGE_STATEMENT} THEN
                EXECUTE $sql${updated}$sql$;
                EXECUTE $sql${turnaround}$sql$;
            ELSE
                {updated};
                {turnaround};
            END IF;
            RETURN NULL;
        END $$""",
    ]


def _recount_single_positive(positive: str) -> str:
    return f"""
    UPDATE progress_counts p SET single_positive = coalesce(
        (SELECT count(*) FROM tubes t
         WHERE t.round_id = p.round_id AND t.sampling_point_id = p.sampling_point_id
           AND coalesce(t.lab_id, 0) = p.lab_id AND {positive.format(a="t")}), 0)
    """


NEW_STATES = (*OLD_STATES, "rerun", "rejected")
NEW_POSITIVE = f"{SINGLE} AND coalesce({{a}}.result_call, '') = 'positive'"
OLD_POSITIVE = "{a}.kind = 'single' AND coalesce({a}.result_call, '') IN ('positive', 'suspicious')"


def upgrade() -> None:
    op.drop_constraint(op.f("ck_tubes_state"), "tubes", type_="check")
    op.create_check_constraint(op.f("ck_tubes_state"), "tubes", _states_check(NEW_STATES))
    for state in ("rerun", "rejected"):
        op.add_column(
            "progress_counts",
            sa.Column(state, sa.BigInteger(), server_default="0", nullable=False),
        )
    for statement in _functions(NEW_STATES, NEW_POSITIVE):
        op.execute(statement)
    op.execute(_recount_single_positive(NEW_POSITIVE))

    op.add_column(
        "uploads", sa.Column("plate_field", sa.String(100), server_default="", nullable=False)
    )
    op.add_column(
        "uploads", sa.Column("format_field", sa.String(20), server_default="", nullable=False)
    )
    op.add_column("uploads", sa.Column("uploaded_by", sa.String(60), nullable=True))
    op.drop_constraint(op.f("uq_uploads_lab_sha256"), "uploads", type_="unique")
    op.create_unique_constraint(
        op.f("uq_uploads_lab_sha256_fields"),
        "uploads",
        ["lab_id", "sha256", "format_field", "plate_field"],
    )

    op.create_table(
        "held_results",
        sa.Column("id", sa.BigInteger(), primary_key=True),
        sa.Column("lab_id", sa.Integer(), sa.ForeignKey("labs.id"), nullable=False),
        sa.Column("upload_id", sa.BigInteger(), sa.ForeignKey("uploads.id"), nullable=False),
        sa.Column("tube_serial", sa.BigInteger(), sa.ForeignKey("tubes.serial"), nullable=False),
        sa.Column("line", sa.Integer(), nullable=False),
        sa.Column("plate", sa.String(100), nullable=False),
        sa.Column("well", sa.String(8), nullable=False),
        # NULL: the plate's controls failed, the tube will wait for its re-run
        sa.Column("call", sa.String(12), nullable=True),
        sa.Column("ct", postgresql.JSONB(), nullable=False),
        sa.Column("controls_ok", sa.Boolean(), nullable=False),
        sa.Column(
            "held_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.CheckConstraint(
            "call IN ('negative', 'positive', 'suspicious', 'invalid')", name="call"
        ),
    )
    op.create_index("ix_held_results_tube", "held_results", ["tube_serial", "lab_id"])
    op.create_table(
        "plate_reruns",
        sa.Column("id", sa.BigInteger(), primary_key=True),
        sa.Column("lab_id", sa.Integer(), sa.ForeignKey("labs.id"), nullable=False),
        sa.Column("plate", sa.String(100), nullable=False),
        sa.Column("status", sa.String(10), server_default="awaiting", nullable=False),
        sa.Column("upload_id", sa.BigInteger(), sa.ForeignKey("uploads.id"), nullable=False),
        sa.Column(
            "failed_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_by", sa.String(60), nullable=True),
        sa.CheckConstraint("status IN ('awaiting', 'rerun', 'abandoned')", name="status"),
    )
    op.create_index(
        "uq_plate_reruns_awaiting",
        "plate_reruns",
        ["lab_id", "plate"],
        unique=True,
        postgresql_where=sa.text("status = 'awaiting'"),
    )
    op.create_table(
        "plate_rerun_tubes",
        sa.Column("rerun_id", sa.BigInteger(), sa.ForeignKey("plate_reruns.id"), primary_key=True),
        sa.Column("tube_serial", sa.BigInteger(), sa.ForeignKey("tubes.serial"), primary_key=True),
        sa.Column("upload_id", sa.BigInteger(), sa.ForeignKey("uploads.id"), nullable=False),
        sa.Column("well", sa.String(8), nullable=False),
        sa.Column("ct", postgresql.JSONB(), nullable=False),
    )
    op.create_index("ix_plate_rerun_tubes_tube", "plate_rerun_tubes", ["tube_serial"])
    op.create_table(
        "tube_rejections",
        sa.Column("tube_serial", sa.BigInteger(), sa.ForeignKey("tubes.serial"), primary_key=True),
        sa.Column("round_id", sa.Integer(), sa.ForeignKey("rounds.id"), nullable=False),
        sa.Column("sampling_point_id", sa.Integer(), nullable=False),
        sa.Column("lab_id", sa.Integer(), sa.ForeignKey("labs.id"), nullable=False),
        sa.Column("box_id", sa.Integer(), sa.ForeignKey("boxes.id"), nullable=True),
        sa.Column("reason", sa.String(12), nullable=False),
        sa.Column("actor", sa.String(60), nullable=False),
        sa.Column(
            "rejected_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "reason IN ('leaking', 'insufficient', 'damaged', 'unlabelled', 'other')",
            name="reason",
        ),
    )
    op.create_index(
        "ix_tube_rejections_round", "tube_rejections", ["round_id", "sampling_point_id"]
    )


def downgrade() -> None:
    op.drop_table("tube_rejections")
    op.drop_table("plate_rerun_tubes")
    op.drop_index("uq_plate_reruns_awaiting", table_name="plate_reruns")
    op.drop_table("plate_reruns")
    op.drop_table("held_results")
    op.drop_constraint(op.f("uq_uploads_lab_sha256_fields"), "uploads", type_="unique")
    op.execute(
        "DELETE FROM uploads u USING uploads v WHERE u.lab_id = v.lab_id"
        " AND u.sha256 = v.sha256 AND u.id > v.id"
        " AND NOT EXISTS (SELECT 1 FROM results r WHERE r.upload_id = u.id)"
        " AND NOT EXISTS (SELECT 1 FROM plate_runs p WHERE p.upload_id = u.id)"
    )
    op.create_unique_constraint(op.f("uq_uploads_lab_sha256"), "uploads", ["lab_id", "sha256"])
    op.drop_column("uploads", "uploaded_by")
    op.drop_column("uploads", "format_field")
    op.drop_column("uploads", "plate_field")
    for statement in _functions(OLD_STATES, OLD_POSITIVE):
        op.execute(statement)
    op.execute(_recount_single_positive(OLD_POSITIVE))
    op.drop_column("progress_counts", "rejected")
    op.drop_column("progress_counts", "rerun")
    op.execute("UPDATE tubes SET state = 'received' WHERE state IN ('rerun', 'rejected')")
    op.drop_constraint(op.f("ck_tubes_state"), "tubes", type_="check")
    op.create_check_constraint(op.f("ck_tubes_state"), "tubes", _states_check(OLD_STATES))
