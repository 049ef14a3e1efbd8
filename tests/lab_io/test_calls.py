"""The one definition of a call: the SQL function ct_call (migration 0002), tested as a
table of cases: kit settings x Ct values x expected call (DOMAIN.md step 6)."""

from __future__ import annotations

import pytest
from sqlalchemy import text

DEFAULT = {"orf": True, "n": True, "e": False, "ic": True, "pos": 40.0, "grey": None, "ctl": 40.0}
WITH_E = {**DEFAULT, "e": True}
GREY = {**DEFAULT, "grey": 42.0}
NO_IC = {**DEFAULT, "ic": False}
STRICT = {**DEFAULT, "pos": 38.0, "ctl": 35.0}

CASES = [
    # kit, ORF1ab, N, E, IC, expected
    (DEFAULT, 30.0, 31.0, None, 25.0, "positive"),
    (DEFAULT, 40.0, 40.0, None, None, "positive"),  # at the cut-off counts
    (DEFAULT, 30.0, None, None, 25.0, "suspicious"),  # single target
    (DEFAULT, None, 35.0, None, 25.0, "suspicious"),
    (DEFAULT, None, None, None, 25.0, "negative"),
    (DEFAULT, None, None, None, None, "invalid"),  # IC failed
    (DEFAULT, None, None, None, 41.0, "invalid"),  # IC above its cut-off
    (DEFAULT, 40.5, None, None, 25.0, "negative"),  # above the cut-off, no grey zone
    (DEFAULT, None, None, 20.0, 25.0, "negative"),  # E is not in this kit
    (WITH_E, 30.0, 31.0, None, 25.0, "suspicious"),  # E missing: not every target
    (WITH_E, 30.0, 31.0, 32.0, 25.0, "positive"),
    (GREY, 41.0, None, None, 25.0, "suspicious"),  # grey zone
    (GREY, 41.0, 41.5, None, 25.0, "suspicious"),
    (GREY, 42.5, None, None, 25.0, "negative"),  # beyond the grey zone
    (GREY, 30.0, 41.0, None, 25.0, "suspicious"),
    (NO_IC, None, None, None, None, "negative"),  # a kit without internal control
    (STRICT, 39.0, 39.0, None, 30.0, "negative"),
    (STRICT, 37.0, 37.5, None, 36.0, "positive"),
    (STRICT, None, None, None, 36.0, "invalid"),
]


@pytest.mark.parametrize(("kit", "orf1ab", "n", "e", "ic", "expected"), CASES)
async def test_a_call_follows_the_kit(db_session, kit, orf1ab, n, e, ic, expected):
    call = await db_session.scalar(
        text(
            "SELECT ct_call(CAST(:orf1ab AS float8), CAST(:n AS float8), CAST(:e AS float8),"
            " CAST(:ic AS float8), :uo, :un, :ue, :ui, :pos, CAST(:grey AS float8), :ctl)"
        ),
        {
            "orf1ab": orf1ab,
            "n": n,
            "e": e,
            "ic": ic,
            "uo": kit["orf"],
            "un": kit["n"],
            "ue": kit["e"],
            "ui": kit["ic"],
            "pos": kit["pos"],
            "grey": kit["grey"],
            "ctl": kit["ctl"],
        },
    )
    assert call == expected
