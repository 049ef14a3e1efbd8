"""sync batches add their people to round_people in one statement

Revision ID: 0011
Revises: 0010

Migration 0006's row trigger ``progress_first_sample`` adds each new sample's person
to ``round_people``: one PL/pgSQL call and one insert per sample, 5,000 for a sync
batch (issue 15). A sync batch now inserts its people itself, in one statement before
its samples (the first sample of each person, in the order the events were taken, as
the row trigger would), and sets ``screening.people_inserted`` to ``on`` for the
length of its samples insert; the row trigger is skipped while it is ``on``. Every
other insert of samples (the online scan) goes on through the row trigger, unchanged.
The counters' statement trigger counts a person from ``round_people`` either way.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SKIP_WHILE = "current_setting('screening.people_inserted', true) IS DISTINCT FROM 'on'"


def upgrade() -> None:
    op.execute("DROP TRIGGER progress_first_sample ON samples")
    op.execute(
        "CREATE TRIGGER progress_first_sample BEFORE INSERT ON samples FOR EACH ROW"
        f" WHEN ({SKIP_WHILE}) EXECUTE FUNCTION progress_first_sample()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER progress_first_sample ON samples")
    op.execute(
        "CREATE TRIGGER progress_first_sample BEFORE INSERT ON samples FOR EACH ROW"
        " EXECUTE FUNCTION progress_first_sample()"
    )
