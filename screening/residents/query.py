"""The resident's own query: their rounds, from their ID number and name (no token).

An unknown ID number and a known one under another name answer alike (None), so the
query is no oracle for guessing ID numbers. Each round says which lab reported and
when, in the deployment's zone, so the answer serves as a result certificate.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

from pooling.standing import SampleOutcome, resident_status
from screening.db import Db, driver_connection
from screening.errors import NotFound
from screening.privacy import Vault
from screening.residents.identity import (
    ID_TYPES,
    InvalidIdNumber,
    check_passport_number,
    normalize_id_number,
    same_name,
)
from screening.residents.ratelimit import FailureLimiter, admit
from screening.residents.schemas import ResultAnswer, ResultQuery, RoundStanding


def candidate_hashes(
    vault: Vault, id_number: str, nationality: str | None = None
) -> tuple[list[bytes], bytes | None]:
    """The look-up hashes of ``id_number`` under every ID type it is well formed for
    (a passport under the given nationality, and in its pre-nationality form), and the
    hash of a passport-shaped number alone (``Vault.passport_number_hash``): without a
    nationality every passport of that number is a candidate (the name still has to
    match); with one, only those of that country or registered without one."""
    hashes = []
    for id_type in ID_TYPES:
        if id_type == "passport":
            if nationality:
                try:
                    canonical = normalize_id_number(id_type, id_number, nationality=nationality)
                    hashes.append(vault.id_hash(id_type, canonical))
                except InvalidIdNumber:
                    pass
            try:
                plain = normalize_id_number("other", id_number)
            except InvalidIdNumber:
                continue
            hashes.append(vault.id_hash(id_type, plain))  # registered before v1.1
            continue
        try:
            hashes.append(vault.id_hash(id_type, normalize_id_number(id_type, id_number)))
        except InvalidIdNumber:
            continue
    try:
        number_hash = (
            None if nationality else vault.passport_number_hash(check_passport_number(id_number))
        )
    except InvalidIdNumber:
        number_hash = None
    return hashes, number_hash


# one round trip, sent on the asyncpg connection itself outside a transaction (issue
# 15: the query answered 215 a second against 988 health checks, spending its time on
# SQLAlchemy binding ~250 hashes and on BEGIN and COMMIT around one SELECT): the people
# holding the ID number, and every sample of theirs. $1: the candidate hashes; $2: a
# passport's number alone (migration 0012; before it, 249 more hashes in $1).
_LOOKUP = """
    SELECT p.id AS resident_id, p.name_enc,
           r.id AS round_id, r.name AS round_name,
           CASE WHEN t.capacity = 1 THEN 'single' ELSE s.kind END AS kind, s.sampled_at,
           t.result_call AS call, t.resulted_at AS reported_at, l.name AS lab,
           m.status AS retest,
           CASE WHEN m.status IN ('negative', 'positive', 'invalid') THEN m.updated_at END
               AS retest_at
    FROM residents p
    LEFT JOIN samples s ON s.resident_id = p.id
    LEFT JOIN rounds r ON r.id = s.round_id
    LEFT JOIN tubes t ON t.serial = s.tube_serial
    LEFT JOIN labs l ON l.id = t.lab_id AND t.resulted_at IS NOT NULL
    LEFT JOIN retest_cases c ON c.pool_tube_serial = t.serial
    LEFT JOIN retest_members m ON m.case_id = c.id AND m.resident_id = s.resident_id
    WHERE p.id_hash = ANY($1::bytea[]) OR p.passport_number_hash = $2::bytea
    ORDER BY r.id DESC, s.sampled_at, s.id
    """


async def answer_query(
    connect: Callable[[], AbstractAsyncContextManager[Db]],
    state: Any,
    client: str,
    ask: ResultQuery,
) -> ResultAnswer:
    """The query's whole answer (the route's and the fast path's): refused while the
    client has used up its failures; a miss counts as one, and is 404 whichever part
    did not match. ``connect`` lends the request's connection, given back before a
    miss is counted on another (a request never waits for a second connection while
    holding one: 32 phones at once took every connection of the pool that way).
    ``state``: the app's (the limiter, the vault, the settings)."""
    limiter: FailureLimiter = state.query_limiter
    async with connect() as db:
        await admit(limiter, client, db)
        items = await query_standings(
            db,
            state.vault,
            ask.id_number,
            ask.name,
            nationality=ask.nationality,
            zone=ZoneInfo(state.settings.timezone),
        )
    if items is None:
        await limiter.record_failure(client)
        raise NotFound("没有查到结果：请核对证件号码和姓名。")
    return ResultAnswer(items=items)


async def query_standings(
    session: Db,
    vault: Vault,
    id_number: str,
    name: str,
    *,
    nationality: str | None = None,
    zone: ZoneInfo | None = None,
) -> list[RoundStanding] | None:
    """The rounds of the person holding this ID number *and* this name, newest first
    (``[]`` before their first sample); None for either mismatch, alike."""
    hashes, number_hash = candidate_hashes(vault, id_number, nationality)
    if not hashes and number_hash is None:
        return None
    conn = await driver_connection(session)
    rows = [SimpleNamespace(**record) for record in await conn.fetch(_LOOKUP, hashes, number_hash)]
    matching = {
        row.resident_id
        for row in {row.resident_id: row for row in rows}.values()
        if same_name(vault.decrypt(row.name_enc), name)
    }
    if not matching:
        return None
    mine = [row for row in rows if row.resident_id in matching and row.round_id]
    return standings(mine, zone or ZoneInfo("UTC"))


def standings(rows: Sequence[Any], zone: ZoneInfo) -> list[RoundStanding]:
    """One item per round the person was sampled in, from their sample rows (newest
    round first, oldest sample first within a round); times in ``zone``."""
    by_round: dict[int, list[Any]] = {}
    for row in rows:
        by_round.setdefault(row.round_id, []).append(row)
    items = []
    for group in by_round.values():
        first, last = group[0], group[-1]
        outcomes = [SampleOutcome(r.kind, r.call, r.retest) for r in group]
        reports: list[tuple[datetime, str | None]] = [
            (t, r.lab) for r in group for t in (r.reported_at, r.retest_at) if t
        ]
        latest = max(reports, key=lambda report: report[0]) if reports else None
        lab = latest[1] if latest else None
        if latest is not None and lab is None:
            # a re-test member's status came with their single tube's row
            lab = next((r.lab for r in reversed(group) if r.lab), None)
        items.append(
            RoundStanding(
                round=first.round_name,
                round_id=first.round_id,
                sampled_at=last.sampled_at.astimezone(zone),
                kind=last.kind,
                status=resident_status(outcomes),
                reported_at=latest[0].astimezone(zone) if latest else None,
                lab=lab,
            )
        )
    return items
