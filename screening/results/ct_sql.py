"""The Ct reading of :mod:`lab_io.ct` as SQL expressions over a text column, for the
set-wise checks of an upload. Built from the same constants (pattern, words, range,
trimmed characters); ``tests/lab_io/test_ct.py`` holds both to the same answers.
``words`` is the placeholder bound to ``sorted(NO_AMPLIFICATION)``.
"""

from __future__ import annotations

from lab_io.ct import BLANKS, CT_MAX, CT_PATTERN

_TRIM = "btrim({column}, E'" + BLANKS.encode("unicode_escape").decode() + "')"


def _number(column: str) -> str:
    trimmed = _TRIM.format(column=column)
    return f"(CASE WHEN {trimmed} ~ '{CT_PATTERN}' THEN replace({trimmed}, ',', '.')::float8 END)"


def sql_ct_ok(column: str, words: str) -> str:
    """True when ``column`` holds a Ct or no amplification. Numbers (most non-blank
    cells) are matched first, so they never meet the word list."""
    trimmed = _TRIM.format(column=column)
    return (
        f"({column} IS NULL OR CASE WHEN {trimmed} ~ '{CT_PATTERN}'"
        f" THEN replace({trimmed}, ',', '.')::float8 BETWEEN 0 AND {CT_MAX}"
        f" ELSE lower({trimmed}) = ANY({words}) END)"
    )


def sql_ct_value(column: str, words: str) -> str:
    """The Ct in ``column`` as float8; NULL for no amplification (or a bad Ct, which
    :func:`sql_ct_ok` has rejected). ``words`` is accepted for symmetry: a text that
    is not a number is never a value."""
    del words
    return f"nullif({_number(column)}, 0)"
