"""How a Ct value is read, in one place (FORMATS.md "Common to all", DOMAIN.md step 6).

The ingestion reads Ct values in SQL (a lab-day is checked set-wise inside
PostgreSQL, :mod:`screening.results.ct_sql`); :func:`parse_ct` reads them in Python.
Both are built from the constants here, and a property test holds them to the same
answer for any text:

- trimmed of spaces, tabs and line ends; ``Undetermined``, ``NaN``, ``N/A``, ``No Ct``,
  ``-``, blank (any case) mean no amplification, and so does a value of 0;
- otherwise a plain decimal number: digits, an optional fraction with a point or a
  comma (``35,12`` is 35.12: a Ct is at most 50, so a comma is never a thousands
  separator here), an optional exponent (``1e1`` is 10); a leading ``+`` is allowed;
- from 0 to 50; anything else is not a Ct.
"""

from __future__ import annotations

import re

CT_MAX = 50.0
NO_AMPLIFICATION = frozenset(
    {
        "",
        "undetermined",
        "nan",
        "n/a",
        "na",
        "no ct",
        "noct",
        "-",
        "--",
        "no cq",
        "none",
        "null",
    }
)
# bounded integer and exponent digits keep every match finite in both Python and
# PostgreSQL (a 400-digit number is infinity to one and an error to the other)
CT_PATTERN = r"^\+?([0-9]{1,6}([.,][0-9]*)?|[.,][0-9]+)([eE][+-]?[0-9]{1,2})?$"
BLANKS = " \t\r\n"
_MATCH = re.compile(CT_PATTERN)


class BadCt(ValueError):
    """Not a Ct: not a number, or outside 0-50."""


def parse_ct(text: str) -> float | None:
    """A Ct value, or None for no amplification; :class:`BadCt` when it is not one."""
    key = text.strip(BLANKS)
    if key.lower() in NO_AMPLIFICATION:
        return None
    if not _MATCH.match(key):
        raise BadCt(f"Ct {text!r} is not a number")
    value = float(key.replace(",", "."))
    if not 0 <= value <= CT_MAX:
        raise BadCt(f"Ct {text!r} is outside 0-{CT_MAX:g}")
    return None if value == 0 else value
