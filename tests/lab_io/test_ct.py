"""How a Ct is read, in one place (lab_io.ct): Python's parse_ct and the SQL the
ingestion runs give the same answer for any text (issue 13: they disagreed on ``1e1``
and ``35,12``)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY, TEXT

from lab_io.ct import NO_AMPLIFICATION, BadCt, parse_ct
from screening.results.ct_sql import sql_ct_ok, sql_ct_value

CASES = [
    ("35.12", 35.12),
    ("35,12", 35.12),  # a decimal comma: a Ct is never in the thousands
    ("1e1", 10.0),
    ("2.5E+1", 25.0),
    (" 30 ", 30.0),
    ("\t28.5\r", 28.5),
    ("+12", 12.0),
    (".5", 0.5),
    ("50", 50.0),
    ("0", None),
    ("0.00", None),
    ("0e5", None),
    ("Undetermined", None),
    ("NaN", None),
    ("N/A", None),
    ("No Ct", None),
    ("-", None),
    ("", None),
    ("50.01", BadCt),
    ("-1", BadCt),
    ("1,234.5", BadCt),
    ("inf", BadCt),
    ("1e999", BadCt),
    ("1_0", BadCt),
    ("thirty", BadCt),
    ("3 0", BadCt),
    ("9" * 400, BadCt),  # infinity to Python, an error to PostgreSQL: refused by both
    ("1." + "0" * 5000 + "1", 1.0),
]


def python_reading(raw: str) -> tuple[bool, float | None]:
    try:
        return True, parse_ct(raw)
    except BadCt:
        return False, None


async def sql_readings(session, values: list[str]) -> list[tuple[bool, float | None]]:
    query = text(
        f"SELECT {sql_ct_ok('v', 'CAST(:words AS text[])')} AS ok,"
        f" {sql_ct_value('v', 'CAST(:words AS text[])')} AS value"
        " FROM unnest(CAST(:values AS text[])) WITH ORDINALITY AS t(v, n) ORDER BY n"
    ).bindparams(bindparam("values", type_=ARRAY(TEXT)), bindparam("words", type_=ARRAY(TEXT)))
    rows = (
        await session.execute(query, {"values": values, "words": sorted(NO_AMPLIFICATION)})
    ).all()
    return [(row.ok, row.value if row.ok else None) for row in rows]


@pytest.mark.parametrize(("raw", "expected"), CASES)
def test_a_ct_reads_as_the_rules_say(raw, expected):
    if expected is BadCt:
        with pytest.raises(BadCt):
            parse_ct(raw)
    else:
        assert parse_ct(raw) == expected


async def test_sql_reads_the_table_alike(db_session):
    values = [raw for raw, _ in CASES]
    assert await sql_readings(db_session, values) == [python_reading(v) for v in values]


ALPHABET = "0123456789.,eE+- \tnaNAudtrmiCcqo/_x\u00a0\u0660"


async def test_python_and_sql_agree_on_any_text(db_session):
    """Hypothesis draws texts from the characters a Ct column holds (and some it
    should not); PostgreSQL reads them all in one statement."""
    drawn: list[str] = []

    @settings(max_examples=600, database=None)
    @given(
        st.one_of(
            st.text(alphabet=ALPHABET, max_size=12),
            st.from_regex(r"\A[+]?[0-9]{0,3}([.,][0-9]{0,3})?([eE][+-]?[0-9]{0,3})?\Z"),
            st.sampled_from(sorted(NO_AMPLIFICATION)).map(str.upper),
        )
    )
    def collect(raw: str) -> None:
        drawn.append(raw)

    collect()
    readings = await sql_readings(db_session, drawn)
    for raw, in_sql in zip(drawn, readings, strict=True):
        assert in_sql == python_reading(raw), raw
