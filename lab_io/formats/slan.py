"""``slan-96p``: 宏石 (Hongshi) SLAN-96P / SLAN-96S exports, xlsx or CSV (FORMATS.md).

Layout: a preamble of about 13 rows of instrument and run details (the instrument name
``SLAN-96P`` appears in it; ``条码``/``板号``/``Barcode``/``实验名称`` rows, when
present, name the plate), then a header row with Chinese column names: ``反应孔``
(well), ``目标`` (target), ``项目`` (sample name; ``样本名称`` in some versions) and
``Ct``; an optional ``样本类型``/``类型`` column flags controls (``阴性对照``,
``阳性对照``). No dye column. One row per well x target.

The xlsx is read row by row (openpyxl read-only mode, first sheet); CSV copies are often
GBK-encoded and are decoded as such. Row numbers are the sheet's / file's line numbers.
"""

from __future__ import annotations

import csv
import zipfile
import zlib
from collections.abc import Iterable, Iterator, Mapping
from typing import BinaryIO
from xml.etree.ElementTree import ParseError

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
)

HEADER_SEARCH_ROWS = 40
WELL_NAMES = ("反应孔", "孔位", "孔", "well")
TARGET_NAMES = ("目标", "通道", "target")
SAMPLE_NAMES = ("项目", "样本名称", "样本", "sample name", "sample")
TYPE_NAMES = ("样本类型", "类型", "type")
# preamble rows that may name the plate, best first
PLATE_KEYS = ("条码", "板号", "barcode", "plate", "实验名称", "实验名", "文件名称", "文件名")
XLSX_MAGIC = b"PK\x03\x04"


def _text(value: object) -> str:
    return "" if value is None else str(value)


def _xlsx_rows(raw: BinaryIO) -> Iterator[tuple[int, list[str]]]:
    from openpyxl import load_workbook

    try:
        book = load_workbook(raw, read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        raise UnreadableFile(f"the xlsx file cannot be opened: {exc}") from None
    try:
        sheet = book.worksheets[0]
        for number, values in enumerate(sheet.iter_rows(values_only=True), start=1):
            yield number, [_text(value) for value in values]
    except (ParseError, zipfile.BadZipFile, zlib.error, EOFError, KeyError, ValueError) as exc:
        # the workbook opened, but a sheet's XML (or its compressed stream) is damaged
        raise UnreadableFile(f"the xlsx file is damaged: {type(exc).__name__}") from None
    finally:
        book.close()


def _csv_rows(raw: BinaryIO) -> Iterator[tuple[int, list[str]]]:
    reader = csv.reader(open_text(raw))
    for row in reader:
        yield reader.line_num, row


def _preamble_pair(row: list[str]) -> tuple[str, str] | None:
    """A preamble row like ``条码, P123`` or ``条码：P123`` -> (``条码``, ``P123``)."""
    values = [value.strip() for value in row if value.strip()]
    if not values:
        return None
    key, _, rest = values[0].replace("：", ":").partition(":")
    value = rest.strip() or (values[1] if len(values) > 1 else "")
    return (header_key(key), value) if value else None


def _plate(preamble: Mapping[str, str]) -> str | None:
    for key in PLATE_KEYS:
        if key in preamble:
            value = preamble[key]
            return value.rsplit(".", 1)[0] if key.startswith("文件") else value
    return None


def read_slan(raw: BinaryIO, *, kit_dyes: Mapping[str, str] | None = None) -> Iterator[WellReading]:
    """One reading per well x target row after the header."""
    head = raw.read(4)
    raw.seek(0)
    rows: Iterable[tuple[int, list[str]]] = (
        _xlsx_rows(raw) if head == XLSX_MAGIC else _csv_rows(raw)
    )
    header: dict[str, int] | None = None
    plate: str | None = None
    preamble: dict[str, str] = {}
    well_at = target_at = sample_at = type_at = None
    for number, row in rows:
        if header is None:
            names = column_index(row)
            if pick(names, *WELL_NAMES) is not None and "ct" in names:
                header = names
                well_at = pick(names, *WELL_NAMES)
                target_at = pick(names, *TARGET_NAMES)
                sample_at = pick(names, *SAMPLE_NAMES)
                type_at = pick(names, *TYPE_NAMES)
                plate = _plate(preamble)
            elif number >= HEADER_SEARCH_ROWS:
                break
            elif pair := _preamble_pair(row):
                preamble.setdefault(*pair)
            continue
        if not any(value.strip() for value in row):
            continue
        sample = cell(row, sample_at)
        yield WellReading(
            number,
            plate,
            normalize_well(cell(row, well_at)),
            sample,
            role_of(cell(row, type_at), sample),
            resolve_target(cell(row, target_at), "", kit_dyes),
            cell(row, header["ct"]),
        )
    if header is None:
        raise UnreadableFile(
            "no header row with 反应孔 (well) and Ct columns: not a SLAN-96P export"
        )
