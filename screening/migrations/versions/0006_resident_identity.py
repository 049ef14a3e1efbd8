"""resident identity: more ID types, nationality, community, address

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

ID_TYPES = "('prc_id', 'hkmo_permit', 'tw_permit', 'foreign_permanent', 'passport', 'other')"


def upgrade() -> None:
    op.drop_constraint(op.f("ck_residents_id_type"), "residents", type_="check")
    op.alter_column("residents", "id_type", type_=sa.String(length=20))  # foreign_permanent
    op.create_check_constraint(op.f("ck_residents_id_type"), "residents", f"id_type IN {ID_TYPES}")
    # a passport is nationality + number (ISO 3166-1 alpha-3); the look-up hash covers both
    op.add_column("residents", sa.Column("nationality", sa.String(length=3), nullable=True))
    # neighbourhood committee: not personal on its own, kept in clear to list by it
    op.add_column("residents", sa.Column("community", sa.String(length=64), nullable=True))
    # home address, encrypted like the phone (the squad needs it for people without phones)
    op.add_column("residents", sa.Column("address_enc", sa.LargeBinary(), nullable=True))
    op.create_index(
        "ix_residents_district_community", "residents", ["district_id", "community", "id"]
    )
    op.create_index("ix_samples_round_resident", "samples", ["round_id", "resident_id"])


def downgrade() -> None:
    op.drop_index("ix_samples_round_resident", table_name="samples")
    op.drop_index("ix_residents_district_community", table_name="residents")
    op.drop_column("residents", "address_enc")
    op.drop_column("residents", "community")
    op.drop_column("residents", "nationality")
    op.drop_constraint(op.f("ck_residents_id_type"), "residents", type_="check")
    op.create_check_constraint(
        op.f("ck_residents_id_type"), "residents", "id_type IN ('prc_id', 'passport', 'other')"
    )
