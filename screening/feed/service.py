"""Reading the result feed: sequence what has committed, then a page after a cursor.

Every read is audited (who, the cursor range, how many rows; no personal data in the
audit row), in the same transaction as the read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from screening.db import raw_connection
from screening.feed.sequencer import sequence_feed
from screening.privacy import Vault
from screening.tokens.service import Principal

# asyncpg directly on the request's connection: a platform drains a lab-day's millions
# of rows in pages of 5,000, and SQLAlchemy's row processing would cost more than the
# query (measured with bench/result_feed.py)
_PAGE = """
    SELECT f.seq, f.round_id, f.status, f.result_kind, f.pooled, f.sampled_at, f.reported_at,
           p.id_type, p.id_enc, p.name_enc, p.nationality, t.barcode AS tube, l.code AS lab
    FROM feed_changes f
    JOIN residents p ON p.id = f.resident_id
    LEFT JOIN tubes t ON t.serial = f.tube_serial
    LEFT JOIN labs l ON l.id = f.lab_id
    WHERE f.seq > $1
    ORDER BY f.seq
    LIMIT $2
"""


@dataclass(frozen=True, slots=True)
class FeedRow:
    """One change with the identity still encrypted (the FHIR view builds on it too)."""

    seq: int
    round_id: int
    status: str
    result_kind: str
    pooled: bool
    sampled_at: datetime
    reported_at: datetime | None
    id_type: str
    id_number: str
    name: str
    nationality: str | None
    tube: str | None
    lab: str | None


async def read_changes(
    session: AsyncSession, principal: Principal, vault: Vault, *, after: int, limit: int, view: str
) -> list[FeedRow]:
    """Up to ``limit`` changes after ``after``, in seq order, audited as ``view``.

    A read numbers at most one batch of new marks itself (so a reader sees its own
    recent writes without waiting for the worker); a lab-day's backlog is the background
    worker's, never held inside one GET."""
    await sequence_feed(session)
    rows = await (await raw_connection(session)).fetch(_PAGE, after, limit)
    changes = [
        FeedRow(
            seq=r["seq"],
            round_id=r["round_id"],
            status=r["status"],
            result_kind=r["result_kind"],
            pooled=r["pooled"],
            sampled_at=r["sampled_at"],
            reported_at=r["reported_at"],
            id_type=r["id_type"],
            id_number=vault.decrypt(r["id_enc"]),
            name=vault.decrypt(r["name_enc"]),
            nationality=r["nationality"],
            tube=r["tube"],
            lab=r["lab"],
        )
        for r in rows
    ]
    detail = {"after": after, "last": changes[-1].seq if changes else after, "rows": len(changes)}
    await session.execute(
        text(
            "INSERT INTO audit_log (role, token_id, action, subject, detail)"
            " VALUES (:role, :token, :action, 'feed', CAST(:detail AS jsonb))"
        ),
        {
            "role": principal.role,
            "token": principal.token_id,
            "action": f"feed-read:{view}",
            "detail": json.dumps(detail),
        },
    )
    return changes


def page_json(changes: list[FeedRow], after: int) -> bytes:
    """A ``FeedPage`` as JSON bytes, built without a model per item (a platform drains
    millions of these after a lab-day; a test holds them to the schema)."""
    return orjson.dumps(
        {
            "items": [
                {
                    "seq": c.seq,
                    "resident": {
                        "id_type": c.id_type,
                        "id_number": c.id_number,
                        "name": c.name,
                        "nationality": c.nationality,
                    },
                    "round_id": c.round_id,
                    "status": c.status,
                    "result_kind": c.result_kind,
                    "tube": c.tube,
                    "pooled": c.pooled,
                    "sampled_at": c.sampled_at,
                    "reported_at": c.reported_at,
                    "lab": c.lab,
                }
                for c in changes
            ],
            "next_cursor": str(changes[-1].seq if changes else after),
        }
    )


async def read_feed(
    session: AsyncSession, principal: Principal, vault: Vault, *, after: int, limit: int
) -> bytes:
    changes = await read_changes(session, principal, vault, after=after, limit=limit, view="json")
    return page_json(changes, after)


async def prune_feed(session: AsyncSession, *, retention_days: float) -> int:
    """Drop changes of closed rounds older than the retention, never past the cursor
    of a push relay that has not delivered them yet. Returns the rows dropped."""
    horizon = timedelta(days=retention_days)
    result = await session.execute(
        text(
            """
            DELETE FROM feed_changes f
            USING rounds r
            WHERE r.id = f.round_id AND r.closed_at IS NOT NULL
              AND f.changed_at < now() - CAST(:horizon AS interval)
              AND f.seq <= coalesce((SELECT min(cursor) FROM feed_relays), f.seq)
            """
        ),
        {"horizon": horizon},
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
