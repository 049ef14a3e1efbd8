"""result feed for the health-code platform

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-23 17:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# How the feed stays exactly-once (screening/feed/sequencer.py has the whole story):
# writers only drop *marks* ("this person's, or this tube's members', standing may have
# changed") in their own transaction, through the triggers below, so no write path can
# forget to; one sequencer at a time (an advisory lock) takes the committed marks,
# computes the standings they touch, and appends the ones that changed to
# feed_changes with the next seq. A seq is therefore only ever taken by a transaction
# that commits before the next sequencer starts: a reader never passes a seq that
# commits later, the trap of numbering rows at insert time.
MARK_SAMPLES = """
CREATE FUNCTION feed_mark_samples() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO feed_marks (resident_id, round_id)
    SELECT DISTINCT resident_id, round_id FROM new_rows;
    RETURN NULL;
END $$;
---
CREATE TRIGGER feed_mark_samples AFTER INSERT ON samples
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION feed_mark_samples();
"""

# a tube's state or result moved: all its members' standings may have (a scan that
# only counts one more swab into an open tube moves neither)
_CHANGED_TUBES = """
    INSERT INTO feed_marks (tube_serial)
    SELECT n.serial FROM new_rows n JOIN old_rows o ON o.serial = n.serial
    WHERE (n.state, n.result_call, n.result_version)
          IS DISTINCT FROM (o.state, o.result_call, o.result_version)
"""
MARK_TUBES = f"""
CREATE FUNCTION feed_mark_tubes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- PL/pgSQL keeps a statement's plan for the session, made for the first call's
    -- transition tables: after a scan's one-tube update it would nest-loop an upload's
    -- 200,000 tubes. Large statements are planned afresh (as migration 0009's counters).
    IF (SELECT count(*) FROM new_rows) > 64 THEN
        EXECUTE $sql${_CHANGED_TUBES}$sql$;
    ELSE
        {_CHANGED_TUBES};
    END IF;
    RETURN NULL;
END $$;
---
CREATE TRIGGER feed_mark_tubes AFTER UPDATE ON tubes
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION feed_mark_tubes();
"""

MARK_MEMBERS = """
CREATE FUNCTION feed_mark_members() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO feed_marks (resident_id, round_id)
    SELECT DISTINCT n.resident_id, c.round_id
    FROM new_rows n JOIN retest_cases c ON c.id = n.case_id;
    RETURN NULL;
END $$;
---
CREATE TRIGGER feed_mark_members_insert AFTER INSERT ON retest_members
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION feed_mark_members();
---
CREATE TRIGGER feed_mark_members_update AFTER UPDATE ON retest_members
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION feed_mark_members();
"""


def upgrade() -> None:
    op.create_table(
        "feed_marks",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("tube_serial", sa.BigInteger(), nullable=True),
        sa.Column("resident_id", sa.BigInteger(), nullable=True),
        sa.Column("round_id", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feed_marks")),
    )
    op.execute("CREATE SEQUENCE feed_seq")
    op.create_table(
        "feed_changes",
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("resident_id", sa.BigInteger(), nullable=False),
        sa.Column("round_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("result_kind", sa.String(length=12), nullable=False),
        sa.Column("tube_serial", sa.BigInteger(), nullable=True),
        sa.Column("pooled", sa.Boolean(), nullable=False),
        sa.Column("sampled_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reported_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lab_id", sa.Integer(), nullable=True),
        sa.Column(
            "changed_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["resident_id"], ["residents.id"], name=op.f("fk_feed_changes_resident_id_residents")
        ),
        sa.ForeignKeyConstraint(
            ["round_id"], ["rounds.id"], name=op.f("fk_feed_changes_round_id_rounds")
        ),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_feed_changes")),
    )
    op.create_index("ix_feed_changes_round_id", "feed_changes", ["round_id"])
    op.create_table(
        "feed_standings",
        sa.Column("resident_id", sa.BigInteger(), nullable=False),
        sa.Column("round_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.PrimaryKeyConstraint("resident_id", "round_id", name=op.f("pk_feed_standings")),
    )
    op.create_table(
        "feed_relays",
        sa.Column("name", sa.String(length=60), nullable=False),
        sa.Column("url", sa.String(length=500), nullable=False),
        sa.Column("cursor", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("pushed", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_feed_relays")),
    )
    op.drop_constraint(op.f("ck_api_tokens_role"), "api_tokens", type_="check")
    op.create_check_constraint(
        "role", "api_tokens", "role IN ('admin', 'sampler', 'lab', 'platform')"
    )
    for ddl in (MARK_SAMPLES, MARK_TUBES, MARK_MEMBERS):
        for statement in ddl.split("---"):
            op.execute(statement)
    # people sampled before the feed existed get their standing on the first run
    op.execute(
        "INSERT INTO feed_marks (resident_id, round_id)"
        " SELECT DISTINCT resident_id, round_id FROM samples"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER feed_mark_members_update ON retest_members")
    op.execute("DROP TRIGGER feed_mark_members_insert ON retest_members")
    op.execute("DROP TRIGGER feed_mark_tubes ON tubes")
    op.execute("DROP TRIGGER feed_mark_samples ON samples")
    op.execute("DROP FUNCTION feed_mark_members(), feed_mark_tubes(), feed_mark_samples()")
    op.drop_constraint(op.f("ck_api_tokens_role"), "api_tokens", type_="check")
    op.create_check_constraint("role", "api_tokens", "role IN ('admin', 'sampler', 'lab')")
    op.drop_table("feed_relays")
    op.drop_table("feed_standings")
    op.drop_index("ix_feed_changes_round_id", table_name="feed_changes")
    op.drop_table("feed_changes")
    op.execute("DROP SEQUENCE feed_seq")
    op.drop_table("feed_marks")
