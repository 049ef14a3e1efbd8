"""The garbage collector while the service runs (issue 15): the long-lived objects of
start-up are frozen out of its sight (a full collection walked them all, a 110-145 ms
stall every few seconds), and the youngest generation is collected far less often (the
objects of the requests in flight, moved to older generations by each young collection,
set off a full collection every second or two)."""

from __future__ import annotations

import gc

from screening.app import YOUNG_GC_THRESHOLD, create_app


async def test_start_up_settles_the_collector_and_stopping_gives_its_thresholds_back(
    settings, engine
):
    before = gc.get_threshold()
    gc.unfreeze()
    app = create_app(settings, engine=engine)
    try:
        async with app.router.lifespan_context(app):
            assert gc.get_freeze_count() > 10_000
            assert gc.get_threshold() == (YOUNG_GC_THRESHOLD, *before[1:])
        assert gc.get_threshold() == before
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
