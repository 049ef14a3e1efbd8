"""Tube barcodes: 14 digits, a 13-digit zero-padded serial and one ISO 7064 MOD 11-10
check digit, so a single mistyped digit and most adjacent transpositions are caught
at the scan."""

from __future__ import annotations

from stdnum.iso7064 import mod_11_10

SERIAL_DIGITS = 13
BARCODE_LENGTH = 14


class BadBarcode(ValueError):
    """A code that cannot be one of ours; the message says why."""


def format_barcode(serial: int) -> str:
    if not 1 <= serial < 10**SERIAL_DIGITS:
        raise ValueError(f"serial must be between 1 and {10**SERIAL_DIGITS - 1}")
    body = f"{serial:0{SERIAL_DIGITS}d}"
    return body + str(mod_11_10.calc_check_digit(body))


def parse_barcode(code: str) -> int:
    code = code.strip()
    if len(code) != BARCODE_LENGTH:
        raise BadBarcode(f"a tube barcode has {BARCODE_LENGTH} digits, this has {len(code)}")
    if not code.isascii() or not code.isdigit():
        raise BadBarcode("a tube barcode has digits only")
    if not mod_11_10.is_valid(code):
        raise BadBarcode("the check digit is wrong (misread or mistyped)")
    serial = int(code[:-1])
    if serial < 1:
        raise BadBarcode("serial 0 is never issued")
    return serial


def barcodes_for_range(first_serial: int, count: int) -> list[str]:
    return [format_barcode(s) for s in range(first_serial, first_serial + count)]
