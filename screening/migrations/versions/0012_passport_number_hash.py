"""a passport's number alone, hashed, for the resident query without a nationality

Revision ID: 0012
Revises: 0011

A passport is looked up by its nationality and number (``id_hash``). A resident who
asks without naming the nationality was looked up under all 249 countries: 249 HMACs
in the service and 249 index probes in the database, on every query whose number has
a passport's shape (an 18-digit PRC ID number has it too), which made the query cost
twice a health check (issue 15). ``passport_number_hash`` is the keyed hash of the
number alone (``Vault.passport_number_hash``), one probe. Its key is the deployment's
secret, which a migration does not hold: rows stored before this revision are filled
in by the service as it starts (``screening.residents.service.backfill_passport_numbers``),
found through the partial index ``ix_residents_passport_unhashed``, which is empty once
they are done.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("ALTER TABLE residents ADD COLUMN passport_number_hash bytea")
    op.execute(
        "CREATE INDEX ix_residents_passport_number_hash ON residents (passport_number_hash)"
        " WHERE passport_number_hash IS NOT NULL"
    )
    op.execute(
        "CREATE INDEX ix_residents_passport_unhashed ON residents (id)"
        " WHERE id_type = 'passport' AND passport_number_hash IS NULL"
    )


def downgrade() -> None:
    op.execute("DROP INDEX ix_residents_passport_unhashed")
    op.execute("DROP INDEX ix_residents_passport_number_hash")
    op.execute("ALTER TABLE residents DROP COLUMN passport_number_hash")
