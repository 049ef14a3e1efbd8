"""one statement trigger on a tube's update, which leaves at once when nothing it keeps moved

Revision ID: 0013
Revises: 0012

Three statement triggers fired on every ``UPDATE tubes``: ``feed_mark_tubes`` (0008),
``progress_tubes_updated`` (0004, 0009) and ``progress_tubes_updated_split`` (0006).
Nine scans in ten only count one more swab into an open tube, which moves no state, lab,
call or result version, so the three found nothing to do; but they ran eight statements
over the transition tables to find that out, a quarter of PostgreSQL's CPU a scan
(``bench/scan_parts.py``, same run: 1,056 µs a scan with them, 808 µs with this one).

One trigger, ``tubes_updated``, now runs their three bodies, verbatim and in the order
the three fired (triggers on one event fire in name order, so the lock order is
unchanged), after one test: a statement of at most ``LARGE_STATEMENT`` tubes in which no
tube's state, lab, call or result version changed returns at once. Larger statements
skip the test (its join, planned once for the session with a scan's one-row transition
tables, would nest-loop an upload: see 0009) and the bodies plan them afresh as before.
The bodies are read from the database at upgrade, so they are exactly the ones in force;
the three functions stay, so a downgrade only puts their triggers back.
"""

import re
from collections.abc import Sequence

from alembic import op
from sqlalchemy import text

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_TRIGGERS = ("feed_mark_tubes", "progress_tubes_updated", "progress_tubes_updated_split")
LARGE_STATEMENT = 64  # as 0009's
MOVED = (
    "(o.state, o.lab_id, o.result_call, o.result_version)"
    " IS DISTINCT FROM (n.state, n.lab_id, n.result_call, n.result_version)"
)
BODY = re.compile(r"\s*BEGIN\b(?P<body>.*)\bRETURN NULL;\s*END\s*", re.DOTALL)


def _body(function: str) -> str:
    """What ``function`` does between its BEGIN and its one ``RETURN NULL``."""
    source = (
        op.get_bind()
        .execute(text("SELECT prosrc FROM pg_proc WHERE proname = :f"), {"f": function})
        .scalar_one()
    )
    found = BODY.fullmatch(source)
    if found is None or source.count("RETURN") != 1:
        raise RuntimeError(f"{function} is not the function this migration was written for")
    return found.group("body")


def upgrade() -> None:
    bodies = "\n".join(f"-- from {f}()\n{_body(f)}" for f in OLD_TRIGGERS)
    op.execute(
        f"""
CREATE FUNCTION tubes_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- a scan counting one more swab into an open tube moves nothing kept here
    IF (SELECT count(*) FROM new_rows) <= {LARGE_STATEMENT} THEN
        IF NOT EXISTS (
            SELECT 1 FROM old_rows o JOIN new_rows n ON n.serial = o.serial WHERE {MOVED}
        ) THEN
            RETURN NULL;
        END IF;
    END IF;
{bodies}
    RETURN NULL;
END $$"""
    )
    for trigger in OLD_TRIGGERS:
        op.execute(f"DROP TRIGGER {trigger} ON tubes")
    op.execute(
        "CREATE TRIGGER tubes_updated AFTER UPDATE ON tubes"
        " REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows"
        " FOR EACH STATEMENT EXECUTE FUNCTION tubes_updated()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER tubes_updated ON tubes")
    op.execute("DROP FUNCTION tubes_updated()")
    for trigger in OLD_TRIGGERS:
        op.execute(
            f"CREATE TRIGGER {trigger} AFTER UPDATE ON tubes"
            " REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows"
            f" FOR EACH STATEMENT EXECUTE FUNCTION {trigger}()"
        )
