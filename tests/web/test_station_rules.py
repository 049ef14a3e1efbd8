"""The station page's own checks (station-rules.js), run in Chromium and held against
the service's (python-stdnum, as screening/residents and pooling/barcodes use it) on
generated codes: a check the page gets wrong would beep a misread code through, or
stop a good one, before the service ever sees it."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from stdnum.cn import ric
from stdnum.iso7064 import mod_11_10, mod_37_36

import screening.web

RULES = (Path(screening.web.__file__).parent / "static" / "station-rules.js").read_text()
CODE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
PRC_FIRST_TWO = ["11", "31", "44", "65", "81", "83", "99", "00"]


def with_rules(browser):
    if browser.execute_script("return typeof window.StationRules") != "object":
        browser.get("about:blank")
        browser.execute_script(RULES)
    return browser


def mutations(code, alphabet, position):
    """``code`` as written, and with the character at ``position`` changed."""
    i = position % len(code)
    other = alphabet[(alphabet.index(code[i]) + 1 + position) % len(alphabet)]
    if other == code[i]:
        other = alphabet[(alphabet.index(other) + 1) % len(alphabet)]
    return [code, code[:i] + other + code[i + 1 :]]


CHECKED = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


class TestTheChecksAgreeWithTheService:
    @CHECKED
    @given(
        st.lists(
            st.tuples(st.text(CODE_ALPHABET, min_size=13, max_size=13), st.integers(0, 99)),
            min_size=1,
            max_size=40,
        )
    )
    def test_resident_codes(self, browser, cases):
        codes = []
        for body, position in cases:
            codes += mutations(
                body + mod_37_36.calc_check_digit(body, CODE_ALPHABET), CODE_ALPHABET, position
            )
        page = with_rules(browser).execute_script(
            "return arguments[0].map((c) => [StationRules.residentCodeOk(c),"
            " StationRules.classify(c.toLowerCase()).kind])",
            codes,
        )
        service = [mod_37_36.is_valid(c, CODE_ALPHABET) for c in codes]
        assert [ok for ok, _ in page] == service
        for (ok, kind), code in zip(page, codes, strict=True):
            if not code.isdigit():  # 14 digits would read as a tube barcode first
                assert kind == ("resident" if ok else "bad-resident")

    @CHECKED
    @given(
        st.lists(st.tuples(st.integers(1, 10**13 - 1), st.integers(0, 99)), min_size=1, max_size=40)
    )
    def test_tube_barcodes(self, browser, cases):
        codes = []
        for serial, position in cases:
            body = f"{serial:013d}"
            codes += mutations(body + mod_11_10.calc_check_digit(body), "0123456789", position)
        page = with_rules(browser).execute_script(
            "return arguments[0].map((c) => StationRules.barcodeOk(c))", codes
        )
        assert page == [mod_11_10.is_valid(c) for c in codes]

    @CHECKED
    @given(
        st.lists(
            st.tuples(
                st.sampled_from(PRC_FIRST_TWO),
                st.integers(0, 9999),
                st.dates(date(1890, 1, 1), date.today() + timedelta(days=400)),
                st.integers(0, 999),
                st.integers(0, 99),
            ),
            min_size=1,
            max_size=30,
        )
    )
    def test_prc_id_numbers(self, browser, cases):
        ids = []
        for first_two, area, born, seq, position in cases:
            body = f"{first_two}{area:04d}{born:%Y%m%d}{seq:03d}"
            ids += mutations(body + ric.calc_check_digit(body + "0"), "0123456789X", position)
        page = with_rules(browser).execute_script(
            "return arguments[0].map((c) =>"
            " [StationRules.gb11643CheckOk(c), StationRules.prcIdOk(c)])",
            ids,
        )
        for (check_ok, valid), id_number in zip(page, ids, strict=True):
            digits_ok = id_number[:17].isdigit()
            check = digits_ok and ric.calc_check_digit(id_number[:17] + "0") == id_number[17]
            assert check_ok == check, id_number
            province = id_number[:2] not in ("99", "00")
            born_ok = _date_ok(id_number[6:14])
            assert valid == (check and province and born_ok), id_number


def _date_ok(yyyymmdd):
    try:
        born = date(int(yyyymmdd[:4]), int(yyyymmdd[4:6]), int(yyyymmdd[6:]))
    except ValueError:
        return False
    return date(1880, 1, 1) <= born <= date.today()
