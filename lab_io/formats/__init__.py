"""Lab instrument file formats, one module each: bytes in, :class:`WellReading` rows out.

``READERS`` maps a format name (API.md) to its reader; every reader takes the file
and the lab kit's dye map and yields readings incrementally.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import BinaryIO

from lab_io.formats.common import UnreadableFile, WellReading
from lab_io.formats.lis_csv import read_lis_csv

Reader = Callable[..., Iterator[WellReading]]
FORMATS = ("lis-csv", "quantstudio", "biorad-cfx", "slan-96p")


def _lis(raw: BinaryIO, *, kit_dyes: Mapping[str, str]) -> Iterator[WellReading]:
    return read_lis_csv(raw)


READERS: dict[str, Reader] = {
    "lis-csv": _lis,
}

__all__ = ["FORMATS", "READERS", "UnreadableFile", "WellReading", "detect_format"]


def detect_format(head: bytes, filename: str | None) -> str | None:
    return "lis-csv" if b"plate" in head[:200].lower() else None
