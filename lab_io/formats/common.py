"""What every lab file format shares: the reading it yields, text decoding, and the
normalisers for wells, targets, control names and Ct values (FORMATS.md, "Common to
all"). Pure: no I/O beyond the file object handed in."""

from __future__ import annotations

import codecs
import io
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import BinaryIO, TextIO

from lab_io.ct import NO_AMPLIFICATION, parse_ct

ROLES = ("sample", "ntc", "pc")
__all__ = ["NO_AMPLIFICATION", "parse_ct"]  # Ct reading lives in lab_io.ct
_TARGETS = {
    "orf1ab": "ORF1ab",
    "orf1ab gene": "ORF1ab",
    "orf": "ORF1ab",
    "orf1": "ORF1ab",
    "orf1a/b": "ORF1ab",
    "orf-1ab": "ORF1ab",
    "n": "N",
    "n gene": "N",
    "n-gene": "N",
    "ngene": "N",
    "e": "E",
    "e gene": "E",
    "e-gene": "E",
    "ic": "IC",
    "rp": "IC",
    "rnasep": "IC",
    "rnase p": "IC",
    "internal control": "IC",
    "内标": "IC",
    "内参": "IC",
}
_DYES = {
    "fam": "FAM",
    "vic": "VIC",
    "hex": "HEX",
    "cy5": "CY5",
    "rox": "ROX",
    "texas red": "ROX",
    "cy3": "CY3",
    "joe": "JOE",
}
_NTC = {
    "ntc",
    "nc",
    "neg",
    "neg ctrl",
    "negative control",
    "阴性对照",
    "阴性质控",
    "neg control",
    "negative",
}
_PC = {
    "pc",
    "pos",
    "pos ctrl",
    "positive control",
    "阳性对照",
    "阳性质控",
    "pos control",
    "positive",
    "standard",
}
_WELL = re.compile(r"^\s*([A-Pa-p])\s*0*([1-9][0-9]?)\s*$")


@dataclass(frozen=True, slots=True)
class WellReading:
    """One Ct reading: one well x one target (wide files yield one per target column)."""

    line: int  # 1-based line (row) number in the file
    plate: str | None  # plate id from the file; None when the file carries none
    well: str  # "A1".."P24" when readable, else the raw text (validation rejects it)
    sample: str  # the sample name as written: a tube barcode for samples
    role: str  # "sample" | "ntc" | "pc"
    target: str  # "ORF1ab" | "N" | "E" | "IC", a dye ("FAM", ...) or the raw name
    ct: str  # the Ct as written, trimmed; "" when the file has none


class UnreadableFile(ValueError):
    """The file cannot be read at all: no recognisable header, not a table, bad bytes."""


def open_text(raw: BinaryIO, sample_bytes: int = 1 << 16) -> TextIO:
    """A text stream over ``raw``: UTF-8 (with or without BOM) or GB18030, any line ends.

    Decides on the first ``sample_bytes`` (cut back to a whole character) and reads
    the rest incrementally.
    """
    head = raw.read(sample_bytes)
    raw.seek(0)
    encoding = "utf-8-sig"
    try:
        codecs.getincrementaldecoder("utf-8-sig")().decode(head, final=False)
    except UnicodeDecodeError:
        try:
            codecs.getincrementaldecoder("gb18030")().decode(head, final=False)
        except UnicodeDecodeError:
            raise UnreadableFile("the file is neither UTF-8 nor GBK/GB18030 text") from None
        encoding = "gb18030"
    if b"\x00" in head:
        raise UnreadableFile("the file is binary, not text")
    return io.TextIOWrapper(raw, encoding=encoding, newline=None, errors="strict")


def normalize_well(text: str) -> str:
    """``A01``, ``a1``, `` A1 `` -> ``A1``; anything else comes back stripped, unchanged."""
    match = _WELL.match(text)
    if not match:
        return text.strip()
    return f"{match.group(1).upper()}{int(match.group(2))}"


def canonical_target(name: str) -> str:
    """``ORF1ab gene`` -> ``ORF1ab``, ``N-gene`` -> ``N``, ``RNaseP`` -> ``IC``, ``Cy5``
    -> ``CY5``."""
    key = " ".join(name.strip().lower().replace("_", " ").split())
    return _TARGETS.get(key) or _DYES.get(key) or name.strip()


def role_of(*labels: str) -> str:
    """The well's role from its sample name and/or a task/content column."""
    for label in labels:
        key = " ".join(label.strip().lower().replace("_", " ").split())
        if key in _NTC or key.startswith("neg ctrl") or key == "ntc":
            return "ntc"
        if key in _PC or key.startswith("pos ctrl"):
            return "pc"
    return "sample"


TARGETS = ("ORF1ab", "N", "E", "IC")
_CT_HEADERS = {"ct", "cт", "cq", "c t", "ct value", "cq value", "ct值", "cт value"}


def header_key(name: str) -> str:
    """A column name as compared: BOM, quotes, case and inner spacing dropped."""
    return " ".join(name.replace("\ufeff", "").strip().strip('"').lower().split())


def is_ct_header(name: str) -> bool:
    """``CT``, ``Ct``, ``Cq`` and the ABI 7500's ``Cт`` (Cyrillic т)."""
    return header_key(name) in _CT_HEADERS


def column_index(names: list[str]) -> dict[str, int]:
    """Column name (``header_key``) -> its first position: some exports repeat a name
    (``Target Name``, ``Task``) in one header row, and the first one is the real one."""
    index: dict[str, int] = {}
    for position, name in enumerate(names):
        key = header_key(name)
        if is_ct_header(name):
            key = "ct"
        index.setdefault(key, position)
    return index


def pick(index: dict[str, int], *names: str) -> int | None:
    """The position of the first of ``names`` present in ``index``."""
    for name in names:
        if name in index:
            return index[name]
    return None


def cell(row: list[str], position: int | None) -> str:
    """The trimmed cell at ``position``; "" when the column is absent or the row short."""
    if position is None or position >= len(row):
        return ""
    return row[position].strip()


def resolve_target(name: str, dye: str, kit_dyes: Mapping[str, str] | None) -> str:
    """The target a reading is for: its target name when that is a known gene, else its
    dye mapped through the lab's kit (``{"FAM": "ORF1ab", ...}``), else what it says."""
    target = canonical_target(name) if name.strip() else ""
    if target in TARGETS:
        return target
    dyes = kit_dyes or {}
    for candidate in (target, canonical_target(dye) if dye.strip() else ""):
        if candidate and candidate.upper() in dyes:
            return dyes[candidate.upper()]
    return target or (canonical_target(dye) if dye.strip() else "")


def well_from_number(number: str, columns: int) -> str:
    """``Well`` numbers (1-based, row-major, may read ``1.0``) -> ``A1``; "" if not one."""
    try:
        value = float(number.replace(",", ""))
    except ValueError:
        return ""
    if value != int(value) or not 1 <= value <= columns * 16:
        return ""
    row, column = divmod(int(value) - 1, columns)
    return f"{'ABCDEFGHIJKLMNOP'[row]}{column + 1}"
