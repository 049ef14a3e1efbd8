"""``quantstudio``: Applied Biosystems 7500 / QuantStudio "Results" exports (FORMATS.md).

Two families, read as one format:

* **Classic** (7500, QuantStudio 5/7 Flex): a header block of ``* Key = Value`` lines
  (``* Experiment Barcode = P2204050017``, ``* Block Type = 384-Well Block``), then
  sections opened by ``[Name]`` lines. Only ``[Results]`` is read: a **tab-separated**
  table, one row per well x target, with columns such as ``Well, Well Position, Omit,
  Sample Name, Target Name, Task, Reporter, Quencher, CT, Ct Mean, ...``. Some names
  (``Target Name``, ``Task``) appear twice in one header row (the first is used); the
  Ct column may be ``CT``, ``Ct`` or the 7500's ``Cт`` (Cyrillic т). ``Task`` is
  ``UNKNOWN``, ``NTC`` or ``STANDARD``/``POSITIVE``; ``Omit = true`` rows are skipped.
  With no ``Well Position`` the ``Well`` number (``1``, ``1.0``) is turned into a
  position by the block size (96 or 384).
* **Design & Analysis** (newer software): ``# Key: Value`` header lines (``# Barcode:``),
  then a quoted section line ``"[Target Call]"`` (or ``[Results]``) and a quoted CSV
  table ``"Well Position","Sample","Target","Cq"`` (a ``Task`` column when present).

The plate is the ``Experiment Barcode`` (``Barcode``); when that is ``NA`` or missing,
the ``Experiment Name``; failing both, the upload's ``plate`` field. A table section
ends at a blank line or the next ``[Section]``. Dye-only targets (``FAM``) are mapped
through the lab's kit.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Mapping
from typing import BinaryIO

from lab_io.formats.common import (
    UnreadableFile,
    WellReading,
    cell,
    column_index,
    header_key,
    normalize_well,
    open_text,
    pick,
    resolve_target,
    role_of,
    well_from_number,
)

RESULT_SECTIONS = {"results", "target call"}
_NO_PLATE = {"", "na", "n/a", "none", "null", "-"}


def _section(line: str) -> str | None:
    """``[Results]`` or ``"[Target Call]"`` -> ``results`` / ``target call``."""
    bare = line.strip().strip(",").strip().strip('"').strip()
    if bare.startswith("[") and bare.endswith("]"):
        return header_key(bare[1:-1])
    return None


def _meta(line: str) -> tuple[str, str] | None:
    """``* Key = Value`` or ``# Key: Value`` -> (key, value)."""
    stripped = line.strip().strip('"')
    if stripped.startswith("*") and "=" in stripped:
        key, _, value = stripped[1:].partition("=")
    elif stripped.startswith("#") and ":" in stripped:
        key, _, value = stripped[1:].partition(":")
    else:
        return None
    return header_key(key), value.strip().strip('"').strip()


def _split(line: str, tabbed: bool) -> list[str]:
    if tabbed:
        return line.rstrip("\n").split("\t")
    return next(csv.reader([line]), [])


def read_quantstudio(
    raw: BinaryIO, *, kit_dyes: Mapping[str, str] | None = None
) -> Iterator[WellReading]:
    """One reading per row of the ``[Results]`` / ``[Target Call]`` table."""
    meta: dict[str, str] = {}
    section: str | None = None
    header: dict[str, int] | None = None
    tabbed = True
    found = False
    columns: int = 12
    plate: str | None = None
    for number, line in enumerate(open_text(raw), start=1):
        named = _section(line)
        if named is not None:
            section, header = named, None
            continue
        if section is None or section not in RESULT_SECTIONS:
            pair = _meta(line) if section is None else None
            if pair is not None:
                meta.setdefault(pair[0], pair[1])
            continue
        if not line.strip().strip(","):
            if header is not None:
                section, header = "done", None
            continue
        if header is None:
            tabbed = "\t" in line
            header = column_index(_split(line, tabbed))
            if pick(header, "well position", "well") is None or "ct" not in header:
                raise UnreadableFile(
                    f"line {number}: the results table needs Well Position (or Well) and CT columns"
                )
            found = True
            columns = 24 if "384" in meta.get("block type", "") else 12
            plate = _plate(meta)
            continue
        row = _split(line, tabbed)
        if cell(row, header.get("omit")).lower() == "true":
            continue
        well = cell(row, header.get("well position"))
        if not well:
            well = well_from_number(cell(row, header.get("well")), columns) or cell(
                row, header.get("well")
            )
        sample = cell(row, pick(header, "sample name", "sample"))
        task = cell(row, pick(header, "task", "content"))
        yield WellReading(
            number,
            plate,
            normalize_well(well),
            sample,
            role_of(task, sample),
            resolve_target(
                cell(row, pick(header, "target name", "target", "detector")),
                cell(row, pick(header, "reporter", "dye", "fluor")),
                kit_dyes,
            ),
            cell(row, header["ct"]),
        )
    if not found:
        raise UnreadableFile(
            "no [Results] or [Target Call] table: not a QuantStudio results export"
        )


def _plate(meta: Mapping[str, str]) -> str | None:
    for key in ("experiment barcode", "barcode", "plate barcode", "experiment name", "name"):
        value = meta.get(key, "")
        if value.strip().lower() not in _NO_PLATE:
            return value.strip()
    return None
