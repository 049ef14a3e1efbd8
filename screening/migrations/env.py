"""Alembic environment: migrations run on a connection handed in by screening.db.

``screening.db.migrate`` passes a live (sync-facing) connection in
``config.attributes["connection"]``; the `alembic` command line is not used, so an
installed wheel migrates itself.
"""

from alembic import context

import screening.models  # noqa: F401  (registers every table on Base.metadata)
from screening.db import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through screening.db.migrate (or `screening migrate`)")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    compare_type=True,
    transaction_per_migration=False,
)
with context.begin_transaction():
    context.run_migrations()
