"""The feed's background work, in every process: sequence committed marks about once
a second (so the feed is current even when nobody reads it, and a push relay finds
numbered pages), and prune old changes about once an hour. The sequencer's advisory
lock lets one process at a time do it; the others skip their turn."""

from __future__ import annotations

import asyncio
import logging
import time

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from screening.config import Settings
from screening.feed.sequencer import BATCH, sequence_feed
from screening.feed.service import prune_feed

log = logging.getLogger(__name__)

PRUNE_EVERY_SECONDS = 3600.0


async def run_feed_worker(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    pruned_at = 0.0
    while True:
        taken = 0
        try:
            async with sessionmaker.begin() as session:
                taken = await sequence_feed(session)
            if time.monotonic() - pruned_at > PRUNE_EVERY_SECONDS:
                async with sessionmaker.begin() as session:
                    dropped = await prune_feed(session, retention_days=settings.feed_retention_days)
                pruned_at = time.monotonic()
                if dropped:
                    log.info("feed: %d changes of closed rounds pruned", dropped)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the database may be away: try again next turn
            log.warning("feed worker: %s", type(exc).__name__)
        await asyncio.sleep(0 if taken == BATCH else settings.feed_sequence_seconds)
