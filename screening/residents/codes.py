"""Resident codes (核酸码): 13 random characters and one check character, 14 in all.

The alphabet is Crockford's base 32, ``0123456789ABCDEFGHJKMNPQRSTVWXYZ`` (no I, L,
O or U, so nothing reads as another character); a character's *value* is its index
in that string (``0`` is 0, ``A`` is 10, ``Z`` is 31).

The check character is ISO 7064's hybrid system MOD 33,32 (the MOD 37,36 system with
this 32-character alphabet; ``python-stdnum``'s ``iso7064.mod_37_36`` with
``alphabet=``). Exactly, with ``M = 32``:

1. ``p = M / 2 = 16``;
2. for each character ``c`` of the 13-character body, left to right:
   ``p = ((p or M) * 2 mod (M + 1) + value(c)) mod M``, where ``p or M`` is ``M``
   when ``p`` is 0;
3. the check character is the one whose value is ``(1 - (p or M) * 2 mod (M + 1)) mod M``
   (``mod`` always answers 0..M-1, also for a negative left side).

A whole code is valid when running step 2 over all 14 characters ends with ``p = 1``.
This catches every single wrong character and most swaps of two neighbours. The
station page checks codes in the browser with the same steps before it beeps; the
service checks again (``422 bad-resident-code``). Codes are read case-insensitively.
"""

from __future__ import annotations

import secrets

from stdnum.iso7064 import mod_37_36

CODE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
CODE_RANDOM_CHARS = 13
CODE_LENGTH = CODE_RANDOM_CHARS + 1


def check_character(body: str) -> str:
    """The check character for a 13-character body (characters from the alphabet)."""
    return mod_37_36.calc_check_digit(body, alphabet=CODE_ALPHABET)


def new_resident_code() -> str:
    """An opaque random personal code (65 random bits) with its check character.

    Never derived from the ID number: a code leaks nothing about its holder.
    """
    # one read of the system's randomness, cut into 5-bit digits (a census seals a
    # million of these; a choice() per character made this its hottest line)
    bits = int.from_bytes(secrets.token_bytes(9)) >> (72 - 5 * CODE_RANDOM_CHARS)
    body = "".join(CODE_ALPHABET[(bits >> (5 * i)) & 31] for i in range(CODE_RANDOM_CHARS))
    return body + check_character(body)


def normalize_resident_code(code: str) -> str:
    """A scanned or typed code as stored: trimmed, upper case."""
    return code.strip().upper()


def is_resident_code(code: str) -> bool:
    """Whether ``code`` (already normalised) has the shape and check character of a code."""
    return (
        len(code) == CODE_LENGTH
        and all(c in CODE_ALPHABET for c in code)
        and mod_37_36.is_valid(code, alphabet=CODE_ALPHABET)
    )


def why_not_resident_code(code: str) -> str | None:
    """None for a well-formed code, else a sentence saying what is wrong with it."""
    if len(code) != CODE_LENGTH:
        return f"a resident code has {CODE_LENGTH} characters, this has {len(code)}"
    if not all(c in CODE_ALPHABET for c in code):
        return "a resident code has digits and the letters A-Z without I, L, O and U only"
    if not mod_37_36.is_valid(code, alphabet=CODE_ALPHABET):
        return "the check character is wrong (misread or mistyped)"
    return None
