"""failed resident queries, counted where every process sees them

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 16:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# One row per failed resident query, kept a minute (screening.residents.ratelimit):
# the limit holds across worker processes and app servers. Unlogged: no WAL per
# failure; a database crash forgets the last minute's count and nothing else.
def upgrade() -> None:
    op.create_table(
        "query_failures",
        sa.Column("client_key", sa.String(length=32), nullable=False),
        sa.Column(
            "at",
            sa.DateTime(timezone=True),
            server_default=sa.text("clock_timestamp()"),
            nullable=False,
        ),
        prefixes=["UNLOGGED"],
    )
    op.create_index("ix_query_failures_client_key_at", "query_failures", ["client_key", "at"])


def downgrade() -> None:
    op.drop_table("query_failures")
