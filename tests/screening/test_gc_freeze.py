"""The service's long-lived objects are frozen out of the garbage collector at start-up
(issue 15: a full collection walked them all, a 110-145 ms stall every few seconds)."""

from __future__ import annotations

import gc

from screening.app import create_app


async def test_start_up_freezes_what_lives_as_long_as_the_process(settings, engine):
    gc.unfreeze()
    app = create_app(settings, engine=engine)
    try:
        async with app.router.lifespan_context(app):
            assert gc.get_freeze_count() > 10_000
    finally:
        gc.unfreeze()
