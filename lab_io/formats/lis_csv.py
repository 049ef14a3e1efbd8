"""``lis-csv``: our own canonical format, for LIS exports and bulk loads (FORMATS.md).

Layout: UTF-8 (or GBK) CSV with a header row; columns in any order, extra columns
ignored: ``plate, well, sample, role, ORF1ab, N, IC`` (``E`` too, for kits that test
it). ``role`` is ``sample`` (the default when the column is absent), ``ntc`` or ``pc``;
target columns hold Ct values, blank for no amplification. One row per well; a file
may hold any number of plates (a whole lab-day in one file is normal).

The service normally lets PostgreSQL parse these files itself (COPY ... CSV);
:func:`read_lis_csv` is the same reading in Python, for files COPY refuses (ragged
rows) and for tests.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from lab_io.formats.common import (
    UnreadableFile,
    WellReading,
    canonical_target,
    normalize_well,
    open_text,
    role_of,
)

REQUIRED = ("plate", "well", "sample")
TARGET_COLUMNS = ("ORF1ab", "N", "E", "IC")


@dataclass(frozen=True, slots=True)
class LisHeader:
    """Where each needed column sits in a lis-csv header (0-based; None: absent)."""

    width: int
    plate: int
    well: int
    sample: int
    role: int | None
    targets: dict[str, int]  # canonical target -> column


def parse_header(line: str) -> LisHeader:
    names = next(csv.reader([line.lstrip("\ufeff")]), [])
    lowered = [name.strip().lower() for name in names]
    missing = [name for name in REQUIRED if name not in lowered]
    if missing:
        raise UnreadableFile(
            f"line 1: a lis-csv header needs plate, well, sample (missing {', '.join(missing)})"
        )
    targets: dict[str, int] = {}
    for index, name in enumerate(names):
        target = canonical_target(name)
        if target in TARGET_COLUMNS and target not in targets:
            targets[target] = index
    if not targets:
        raise UnreadableFile("line 1: a lis-csv header needs target columns (ORF1ab, N, IC)")
    return LisHeader(
        width=len(names),
        plate=lowered.index("plate"),
        well=lowered.index("well"),
        sample=lowered.index("sample"),
        role=lowered.index("role") if "role" in lowered else None,
        targets=targets,
    )


def read_lis_csv(raw: BinaryIO) -> Iterator[WellReading]:
    """One reading per target column of every data row."""
    text = open_text(raw)
    reader = csv.reader(text)
    try:
        header = parse_header(",".join(f'"{c}"' for c in next(reader)))
    except StopIteration:
        raise UnreadableFile("the file is empty; expected a lis-csv header") from None
    for row in reader:
        if not any(cell.strip() for cell in row):
            continue
        line = reader.line_num

        def cell(index: int | None, row: list[str] = row) -> str:
            return row[index].strip() if index is not None and index < len(row) else ""

        role = cell(header.role).lower() or "sample"
        sample = cell(header.sample)
        role = role if role in ("sample", "ntc", "pc") else role_of(role, sample)
        for target, index in header.targets.items():
            yield WellReading(
                line,
                cell(header.plate) or None,
                normalize_well(cell(header.well)),
                sample,
                role,
                target,
                cell(index),
            )
