"""How a Ct value is read, in one place (FORMATS.md "Common to all", DOMAIN.md step 6).

The ingestion reads Ct values in SQL (a lab-day is checked set-wise inside
PostgreSQL); :func:`parse_ct` reads them in Python. Both are built from the constants
here, and a property test holds them to the same answer for any text:

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
# bounded digit counts keep every match finite in both Python and PostgreSQL
CT_PATTERN = r"^\+?([0-9]{1,6}([.,][0-9]{0,12})?|[.,][0-9]{1,12})([eE][+-]?[0-9]{1,2})?$"
_BLANKS = " \t\r\n"
_MATCH = re.compile(CT_PATTERN)


class BadCt(ValueError):
    """Not a Ct: not a number, or outside 0-50."""


def parse_ct(text: str) -> float | None:
    """A Ct value, or None for no amplification; :class:`BadCt` when it is not one."""
    key = text.strip(_BLANKS)
    if key.lower() in NO_AMPLIFICATION:
        return None
    if not _MATCH.match(key):
        raise BadCt(f"Ct {text!r} is not a number")
    value = float(key.replace(",", "."))
    if not 0 <= value <= CT_MAX:
        raise BadCt(f"Ct {text!r} is outside 0-{CT_MAX:g}")
    return None if value == 0 else value


# ---- the same reading as SQL expressions over a text column; ``words`` is the
# placeholder bound to ``sorted(NO_AMPLIFICATION)``

_TRIM = "btrim({column}, E' \\t\\r\\n')"


def _number(column: str) -> str:
    trimmed = _TRIM.format(column=column)
    return f"(CASE WHEN {trimmed} ~ '{CT_PATTERN}' THEN replace({trimmed}, ',', '.')::float8 END)"


def sql_ct_ok(column: str, words: str) -> str:
    """True when ``column`` holds a Ct or no amplification."""
    trimmed = _TRIM.format(column=column)
    return (
        f"({column} IS NULL OR lower({trimmed}) = ANY({words})"
        f" OR coalesce({_number(column)} BETWEEN 0 AND {CT_MAX}, false))"
    )


def sql_ct_value(column: str, words: str) -> str:
    """The Ct in ``column`` as float8; NULL for no amplification (or a bad Ct, which
    :func:`sql_ct_ok` has rejected)."""
    trimmed = _TRIM.format(column=column)
    return (
        f"(CASE WHEN {column} IS NULL OR lower({trimmed}) = ANY({words}) THEN NULL"
        f" ELSE nullif({_number(column)}, 0) END)"
    )
