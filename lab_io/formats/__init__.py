"""Lab instrument file formats, one module each: bytes in, :class:`WellReading` rows out.

``READERS`` maps a format name (API.md) to its reader; every reader takes the file
and the lab kit's dye map and yields readings incrementally. :func:`detect_format`
picks the format when an upload names none.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import BinaryIO

from lab_io.formats.biorad_cfx import plate_from_filename, read_biorad_cfx
from lab_io.formats.common import UnreadableFile, WellReading
from lab_io.formats.detect import detect_format
from lab_io.formats.lis_csv import read_lis_csv
from lab_io.formats.quantstudio import read_quantstudio
from lab_io.formats.slan import read_slan

Reader = Callable[..., Iterator[WellReading]]
FORMATS = ("lis-csv", "quantstudio", "biorad-cfx", "slan-96p")


def _lis(raw: BinaryIO, *, kit_dyes: Mapping[str, str] | None = None) -> Iterator[WellReading]:
    return read_lis_csv(raw)


READERS: dict[str, Reader] = {
    "lis-csv": _lis,
    "quantstudio": read_quantstudio,
    "biorad-cfx": read_biorad_cfx,
    "slan-96p": read_slan,
}

__all__ = [
    "FORMATS",
    "READERS",
    "UnreadableFile",
    "WellReading",
    "detect_format",
    "plate_from_filename",
]
