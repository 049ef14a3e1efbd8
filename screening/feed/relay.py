"""Pushing the feed to a platform that only accepts pushes (`screening feed push`).

Each page is POSTed as JSON (the body of ``GET /feed/results``) or as the FHIR Bundle,
signed with HMAC-SHA256 over the exact body bytes:

    X-Screening-Signature: sha256=<hex digest of the body, keyed with the secret>
    X-Screening-Page: <after>-<last seq>     (the same page always has the same id)

The relay's cursor lives in the database (``feed_relays``, one row per relay name) and
moves only after the receiver answered 2xx, so a restart resumes after the last page
delivered: nothing is lost. A receiver that fails, times out or is down gets the same
page again after a back-off (0.5 s doubling to a minute). The one window in which a page
can arrive twice is a relay killed after the receiver's 2xx and before the cursor is
written; the page id lets the receiver drop that repeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
from dataclasses import dataclass

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from screening.db import make_sessionmaker
from screening.feed.fhir import feed_bundle
from screening.feed.service import page_json, read_changes
from screening.privacy import Vault
from screening.tokens.service import Principal

log = logging.getLogger(__name__)

RELAY = Principal(role="relay")


@dataclass(frozen=True, slots=True)
class RelayConfig:
    name: str
    url: str
    secret: str
    fmt: str = "json"  # or "fhir"
    limit: int = 1000
    idle_seconds: float = 1.0
    first_backoff: float = 0.5
    max_backoff: float = 60.0
    timeout: float = 30.0


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


async def _next_page(
    engine: AsyncEngine, vault: Vault, config: RelayConfig
) -> tuple[int, int, int, bytes] | None:
    """(after, last, rows, body) of the next page to deliver, or None when caught up."""
    async with make_sessionmaker(engine).begin() as session:
        await session.execute(
            text(
                "INSERT INTO feed_relays (name, url) VALUES (:name, :url)"
                " ON CONFLICT (name) DO UPDATE SET url = excluded.url"
            ),
            {"name": config.name, "url": config.url},
        )
        after = int(
            await session.scalar(
                text("SELECT cursor FROM feed_relays WHERE name = :name"), {"name": config.name}
            )
            or 0
        )
        rows = await read_changes(
            session, RELAY, vault, after=after, limit=config.limit, view=f"push:{config.fmt}"
        )
    if not rows:
        return None
    last = rows[-1].seq
    if config.fmt == "fhir":
        body = feed_bundle(rows, last).model_dump_json(exclude_none=True).encode()
    else:
        body = page_json(rows, after)
    return after, last, len(rows), body


async def _delivered(
    engine: AsyncEngine, config: RelayConfig, after: int, last: int, n: int
) -> bool:
    """Move the cursor past a delivered page, unless another relay of the same name
    moved it meanwhile (then this one stops: two relays must not share a cursor)."""
    async with make_sessionmaker(engine).begin() as session:
        moved = await session.execute(
            text(
                "UPDATE feed_relays SET cursor = :last, pushed = pushed + :n, updated_at = now()"
                " WHERE name = :name AND cursor = :after"
            ),
            {"name": config.name, "after": after, "last": last, "n": n},
        )
    return bool(moved.rowcount)  # type: ignore[attr-defined]


async def push(
    engine: AsyncEngine,
    vault: Vault,
    config: RelayConfig,
    *,
    until_idle: bool = False,
    stop: asyncio.Event | None = None,
    client: httpx.AsyncClient | None = None,
) -> int:
    """Deliver pages until ``stop`` is set (a page in flight is finished first, so a
    graceful stop never repeats one) or, with ``until_idle``, until caught up; returns
    the number of pages delivered."""
    stop = stop or asyncio.Event()
    own = client is None
    http = client or httpx.AsyncClient(timeout=config.timeout)
    pages = 0
    backoff = config.first_backoff
    try:
        while not stop.is_set():
            page = await _next_page(engine, vault, config)
            if page is None:
                if until_idle:
                    return pages
                await _pause(stop, config.idle_seconds)
                continue
            after, last, count, body = page
            headers = {
                "Content-Type": "application/fhir+json"
                if config.fmt == "fhir"
                else "application/json",
                "X-Screening-Signature": sign(config.secret, body),
                "X-Screening-Page": f"{after}-{last}",
            }
            try:
                answer = await http.post(config.url, content=body, headers=headers)
                ok = 200 <= answer.status_code < 300
                why = f"HTTP {answer.status_code}"
            except httpx.HTTPError as exc:
                ok, why = False, type(exc).__name__
            if not ok:
                log.warning(
                    "feed push of page %s-%s failed (%s); again in %.1f s",
                    after,
                    last,
                    why,
                    backoff,
                )
                await _pause(stop, backoff)
                backoff = min(config.max_backoff, backoff * 2)
                continue
            backoff = config.first_backoff
            if not await _delivered(engine, config, after, last, count):
                log.error("relay %s: its cursor was moved by another relay; stopping", config.name)
                return pages
            pages += 1
        return pages
    finally:
        if own:
            await http.aclose()


async def _pause(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
