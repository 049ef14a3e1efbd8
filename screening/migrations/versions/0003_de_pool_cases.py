"""de-pool cases

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 09:06:22.249331
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column(
            "at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column("role", sa.String(length=10), nullable=False),
        sa.Column("token_id", sa.Integer(), nullable=True),
        sa.Column("action", sa.String(length=40), nullable=False),
        sa.Column("subject", sa.String(length=100), nullable=False),
        sa.Column(
            "detail", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    op.create_table(
        "retest_cases",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("round_id", sa.Integer(), nullable=False),
        sa.Column("pool_tube_serial", sa.BigInteger(), nullable=False),
        sa.Column("sampling_point_id", sa.Integer(), nullable=False),
        sa.Column("lab_id", sa.Integer(), nullable=True),
        sa.Column("pool_result", sa.String(length=12), nullable=False),
        sa.Column("status", sa.String(length=10), server_default="open", nullable=False),
        sa.Column("discordant", sa.Boolean(), nullable=True),
        sa.Column(
            "opened_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("overdue_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "pool_result IN ('positive', 'suspicious')", name=op.f("ck_retest_cases_pool_result")
        ),
        sa.CheckConstraint("status IN ('open', 'resolved')", name=op.f("ck_retest_cases_status")),
        sa.ForeignKeyConstraint(["lab_id"], ["labs.id"], name=op.f("fk_retest_cases_lab_id_labs")),
        sa.ForeignKeyConstraint(
            ["pool_tube_serial"],
            ["tubes.serial"],
            name=op.f("fk_retest_cases_pool_tube_serial_tubes"),
        ),
        sa.ForeignKeyConstraint(
            ["round_id"], ["rounds.id"], name=op.f("fk_retest_cases_round_id_rounds")
        ),
        sa.ForeignKeyConstraint(
            ["sampling_point_id"],
            ["sampling_points.id"],
            name=op.f("fk_retest_cases_sampling_point_id_sampling_points"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_retest_cases")),
        sa.UniqueConstraint("pool_tube_serial", name=op.f("uq_retest_cases_pool_tube_serial")),
    )
    op.create_index(
        "ix_retest_cases_round_status", "retest_cases", ["round_id", "status"], unique=False
    )
    op.create_index(
        op.f("ix_retest_cases_sampling_point_id"),
        "retest_cases",
        ["sampling_point_id"],
        unique=False,
    )
    op.create_table(
        "retest_events",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("round_id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.BigInteger(), nullable=False),
        sa.Column("sampling_point_id", sa.Integer(), nullable=False),
        sa.Column("resident_id", sa.BigInteger(), nullable=True),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("from_status", sa.String(length=12), nullable=True),
        sa.Column("to_status", sa.String(length=12), nullable=True),
        sa.Column("actor", sa.String(length=60), nullable=False),
        sa.Column(
            "at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.CheckConstraint(
            "kind IN ('case-opened', 'member-resampled', 'member-resulted', 'case-resolved',"
            " 'case-overdue', 'member-overdue')",
            name=op.f("ck_retest_events_kind"),
        ),
        sa.ForeignKeyConstraint(
            ["case_id"], ["retest_cases.id"], name=op.f("fk_retest_events_case_id_retest_cases")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_retest_events")),
    )
    op.create_index(op.f("ix_retest_events_case_id"), "retest_events", ["case_id"], unique=False)
    op.create_table(
        "retest_members",
        sa.Column("case_id", sa.BigInteger(), nullable=False),
        sa.Column("resident_id", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=12), server_default="to-recall", nullable=False),
        sa.Column("single_tube_serial", sa.BigInteger(), nullable=True),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("overdue_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('to-recall', 'resampled', 'negative', 'positive', 'invalid')",
            name=op.f("ck_retest_members_status"),
        ),
        sa.ForeignKeyConstraint(
            ["case_id"], ["retest_cases.id"], name=op.f("fk_retest_members_case_id_retest_cases")
        ),
        sa.ForeignKeyConstraint(
            ["resident_id"], ["residents.id"], name=op.f("fk_retest_members_resident_id_residents")
        ),
        sa.ForeignKeyConstraint(
            ["single_tube_serial"],
            ["tubes.serial"],
            name=op.f("fk_retest_members_single_tube_serial_tubes"),
        ),
        sa.PrimaryKeyConstraint("case_id", "resident_id", name=op.f("pk_retest_members")),
    )
    op.create_index(
        op.f("ix_retest_members_resident_id"), "retest_members", ["resident_id"], unique=False
    )
    op.create_index(
        op.f("ix_retest_members_single_tube_serial"),
        "retest_members",
        ["single_tube_serial"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_retest_members_single_tube_serial"), table_name="retest_members")
    op.drop_index(op.f("ix_retest_members_resident_id"), table_name="retest_members")
    op.drop_table("retest_members")
    op.drop_index(op.f("ix_retest_events_case_id"), table_name="retest_events")
    op.drop_table("retest_events")
    op.drop_index(op.f("ix_retest_cases_sampling_point_id"), table_name="retest_cases")
    op.drop_index("ix_retest_cases_round_status", table_name="retest_cases")
    op.drop_table("retest_cases")
    op.drop_table("audit_log")
