"""``biorad-cfx``: Bio-Rad CFX96 / CFX Opus "Quantification Cq Results" CSV (FORMATS.md).

Layout: a CSV whose header row starts with an **empty first column**, then ``Well,
Fluor, Target, Content, Sample, Biological Set Name, Cq, Cq Mean, Cq Std. Dev,
Starting Quantity (SQ), Log Starting Quantity, SQ Mean, SQ Std. Dev, Set Point, Well
Note``. One row per well x fluor; wells zero-padded (``A01``); no amplification is
``NaN``. ``Content`` is ``Unkn``/``Unkn-01`` (a sample), ``NTC``, ``Neg Ctrl`` or ``Pos
Ctrl``. A blank ``Target`` falls back to the ``Fluor`` mapped through the lab's kit.
Rows before the header (some CFX Maestro versions write a few) are skipped.

The table carries no plate barcode. The plate is, best first: the file's own run
information, a preamble row ``Plate ID``/``Plate Barcode``/``Barcode``/``Run Name``
(some CFX Maestro versions write one); the upload's ``plate`` field; the run name in
CFX Maestro's own file name ``<user>_<YYYY-MM-DD HH-MM-SS>_<run> - Quantification Cq
Results.csv`` (``admin_2022-04-05 10-23-45_BR000123 - ...`` is ``BR000123``, not the
user ``admin``); else a name ``<plate>_... Quantification Cq Results.csv``
(:func:`plate_from_filename`).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator, Mapping
from pathlib import PurePath
from typing import BinaryIO

from lab_io.formats.common import (
    UnreadableFile,
    WellReading,
    cell,
    column_index,
    normalize_well,
    open_text,
    pick,
    resolve_target,
    role_of,
)

HEADER_SEARCH_ROWS = 30
_PLATE_IN_NAME = re.compile(r"^\s*([^_\s][^_]*?)\s*_.*quantification\s+cq\s+results", re.I)
_MAESTRO_NAME = re.compile(
    r"^.+?_\d{4}-\d{2}-\d{2}[ _]\d{2}-\d{2}-\d{2}_(.+?)[\s-]*quantification\s+cq\s+results",
    re.I,
)
PLATE_KEYS = ("plate id", "plate barcode", "barcode", "run name", "plate name")


def plate_from_filename(filename: str | None) -> str | None:
    """``admin_2022-04-05 10-23-45_BR000123 - Quantification Cq Results.csv`` ->
    ``BR000123``; ``P2204050017_2022-04-05 Quantification Cq Results.csv`` ->
    ``P2204050017``."""
    if not filename:
        return None
    name = PurePath(filename.replace("\\", "/")).name
    for pattern in (_MAESTRO_NAME, _PLATE_IN_NAME):
        match = pattern.match(name)
        if match and match.group(1).strip(" -"):
            return match.group(1).strip(" -")
    return None


def _run_information(row: list[str]) -> str | None:
    """A preamble row ``Plate ID, P123`` (or ``Plate ID: P123``) -> ``P123``."""
    values = [value.strip() for value in row if value.strip()]
    if not values:
        return None
    key, _, rest = values[0].partition(":")
    if key.strip().lower() not in PLATE_KEYS:
        return None
    value = rest.strip() or (values[1] if len(values) > 1 else "")
    return value or None


def read_biorad_cfx(
    raw: BinaryIO, *, kit_dyes: Mapping[str, str] | None = None
) -> Iterator[WellReading]:
    """One reading per well x fluor row."""
    reader = csv.reader(open_text(raw))
    header: dict[str, int] | None = None
    plate: str | None = None
    for row in reader:
        if header is None:
            names = column_index(row)
            if "well" in names and "ct" in names:
                header = names
            elif reader.line_num >= HEADER_SEARCH_ROWS:
                break
            else:
                plate = plate or _run_information(row)
            continue
        if not any(value.strip() for value in row):
            continue
        sample = cell(row, pick(header, "sample", "sample name"))
        yield WellReading(
            reader.line_num,
            plate,
            normalize_well(cell(row, header["well"])),
            sample,
            role_of(cell(row, pick(header, "content", "sample type")), sample),
            resolve_target(
                cell(row, header.get("target")), cell(row, pick(header, "fluor", "dye")), kit_dyes
            ),
            cell(row, header["ct"]),
        )
    if header is None:
        raise UnreadableFile(
            "no header row with Well and Cq columns: not a CFX Quantification Cq Results file"
        )
