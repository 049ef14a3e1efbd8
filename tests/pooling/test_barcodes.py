"""Tube barcodes (pooling.barcodes): 13-digit serial + ISO 7064 MOD 11-10 check digit."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pooling.barcodes import BadBarcode, barcodes_for_range, format_barcode, parse_barcode

serials = st.integers(1, 10**13 - 1)


@given(serials)
def test_a_barcode_reads_back_as_its_serial(serial):
    code = format_barcode(serial)
    assert len(code) == 14 and code.isdigit()
    assert parse_barcode(code) == serial


@given(serials, st.integers(0, 13), st.integers(1, 9))
def test_every_single_mistyped_digit_is_caught(serial, position, shift):
    code = format_barcode(serial)
    wrong = code[:position] + str((int(code[position]) + shift) % 10) + code[position + 1 :]
    with pytest.raises(BadBarcode):
        parse_barcode(wrong)


def test_most_swapped_neighbours_are_caught():
    """MOD 11-10 catches about 98% of adjacent transpositions (not all: it is a
    single-digit check); measured over a fixed sample so the figure cannot drift."""
    rng = random.Random(7)
    swaps = caught = 0
    for _ in range(2000):
        code = format_barcode(rng.randrange(1, 10**13))
        for p in range(13):
            if code[p] == code[p + 1]:
                continue
            swaps += 1
            try:
                parse_barcode(code[:p] + code[p + 1] + code[p] + code[p + 2 :])
            except BadBarcode:
                caught += 1
    assert caught / swaps > 0.97


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        ("123", "14 digits"),
        ("1234567890123X", "digits only"),
        ("１２３４５６７８９０１２３４", "digits only"),  # full-width digits
        (
            format_barcode(42)[:-1] + "0" if format_barcode(42)[-1] != "0" else "00000000000421",
            "check digit",
        ),
    ],
)
def test_a_bad_code_says_why(code, reason):
    with pytest.raises(BadBarcode, match=reason):
        parse_barcode(code)


def test_a_range_is_consecutive():
    codes = barcodes_for_range(999, 3)
    assert [parse_barcode(c) for c in codes] == [999, 1000, 1001]
