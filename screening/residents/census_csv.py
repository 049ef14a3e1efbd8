"""A census CSV as bytes: its encoding, its header, then whole lines a batch at a time.

Layout: a header on line 1 naming the columns in any order (``id_type``,
``id_number``, ``name``, ``district``; optional ``phone``, ``nationality``,
``community``, ``address``), then one resident a line, comma-separated, fields quoted
with ``"`` when they hold a comma, a quote (doubled) or a line end; UTF-8 (with or
without a BOM) or GB18030, the two a community office's spreadsheet saves; lines end
in CRLF, LF or CR. Blank lines are skipped; line numbers count physical lines, as the
csv module does, so a quoted field spanning two lines moves the numbers after it.

The service process never holds a census line as Python objects: it cuts the file's
bytes at record ends (a line end outside quoted fields) into chunks of about a batch
of lines, and only the process that checks a chunk parses it into rows. Cutting
between bytes is safe for both encodings: ``"``, ``,``, CR and LF never occur inside
a multi-byte character of UTF-8 or GB18030.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

from screening.errors import UnreadableFile

REQUIRED_COLUMNS = ("id_type", "id_number", "name", "district")
OPTIONAL_COLUMNS = ("phone", "nationality", "community", "address")
MAX_RECORD_BYTES = 1 << 20
"""A record (a line, or lines joined by a quoted field) longer than this ends the import
(an unclosed quote, not a resident); a chunk is cut at about this size as well."""
_PROBE_BYTES = 1 << 20
_READ_BYTES = 16 << 10

# One record of the csv module's default (excel) dialect, as its reader splits them: a
# field is quoted (a doubled quote inside stands for one; after the closing quote,
# anything but a quote starts plain text kept up to the next comma) or unquoted (a
# quote inside is a plain character), and the record ends at CRLF, LF or CR outside
# quotes. The alternatives part on their first byte, so matching stays linear.
_FIELD = rb'(?:"(?:[^"]|"")*"(?:[^,"\r\n][^,\r\n]*)?|[^,"\r\n][^,\r\n]*|)'
_RECORD = _FIELD + rb"(?:," + _FIELD + rb")*(?:\r\n|\n|\r)"
_ONE_RECORD = re.compile(_RECORD)
_RECORDS = re.compile(rb"(?:" + _RECORD + rb")*")


def detect_encoding(raw: IO[bytes]) -> str:
    """``utf-8-sig`` when every byte decodes as UTF-8, else ``gb18030``; rewinds."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    encoding = "utf-8-sig"
    try:
        while chunk := raw.read(_PROBE_BYTES):
            decoder.decode(chunk)
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        encoding = "gb18030"
    raw.seek(0)
    return encoding


def record_end(
    data: bytes, *, lines: int | None = None, first: bool = False, final: bool = False
) -> int:
    """The index just past the last whole record in ``data`` (or the ``first``; or the
    ``lines``-th line when the data has neither quotes nor lone CRs, so that finding it
    is cheap), 0 when there is none; ``data`` starts at a record's start. A CR as the
    last byte ends nothing unless ``final``: its LF may come with the next read."""
    if not final and data.endswith(b"\r"):
        data = data[:-1]
    if first or b'"' in data:
        match = (_ONE_RECORD if first else _RECORDS).match(data)
        return match.end() if match else 0
    if lines is None or data.count(b"\r") != data.count(b"\r\n"):
        return max(data.rfind(b"\n"), data.rfind(b"\r")) + 1
    end = 0
    for _ in range(lines):
        found = data.find(b"\n", end)
        if found < 0:
            break
        end = found + 1
    return end


def count_lines(data: bytes) -> int:
    """Line ends in ``data`` as the csv module counts lines (CRLF, LF and CR)."""
    return data.count(b"\n") + data.count(b"\r") - data.count(b"\r\n")


@dataclass(frozen=True)
class Layout:
    """How to read a census's data lines: their encoding and each known column's place."""

    encoding: str
    index: dict[str, int]


@dataclass(frozen=True)
class Chunk:
    """Whole records of the file; ``first_line`` is the number of its first line."""

    data: bytes
    first_line: int


class CensusFile:
    """A census CSV's bytes: the header read on opening, then chunks of whole records."""

    def __init__(self, raw: IO[bytes], *, read_bytes: int = _READ_BYTES) -> None:
        self.raw = raw
        self.read_bytes = read_bytes
        self.pending = b""
        self.line = 1
        encoding = detect_encoding(raw)
        head = self._take(1, first=True)
        if head is None:
            raise UnreadableFile("the file is empty; expected a header line")
        text = head.data.decode(encoding, errors="replace")  # utf-8-sig drops the BOM
        try:
            header = [h.strip().lower() for h in next(csv.reader(io.StringIO(text, newline="")))]
        except (StopIteration, csv.Error):
            raise UnreadableFile("the file is empty; expected a header line") from None
        missing = [c for c in REQUIRED_COLUMNS if c not in header]
        if missing:
            raise UnreadableFile(
                f"line 1: the header lacks {', '.join(missing)}; expected"
                f" {','.join(REQUIRED_COLUMNS)} (optional: {','.join(OPTIONAL_COLUMNS)})"
            )
        index = {
            name: header.index(name)
            for name in (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS)
            if name in header
        }
        # a BOM belongs to the file's start only: one further down is a character
        self.layout = Layout("utf-8" if encoding == "utf-8-sig" else encoding, index)

    def next_chunk(self, lines: int) -> Chunk | None:
        """Whole records of ``lines`` lines (more when quotes make the exact place dear
        to find; fewer at the end of the file, or when they pass MAX_RECORD_BYTES);
        None after the end."""
        return self._take(lines)

    def _take(self, lines: int, *, first: bool = False) -> Chunk | None:
        data = self.pending
        seen = count_lines(data)
        while True:
            if seen >= lines or len(data) > MAX_RECORD_BYTES:
                cut = record_end(data, lines=lines, first=first)
                if cut:
                    break
                if len(data) > MAX_RECORD_BYTES:
                    raise UnreadableFile(
                        f"line {self.line}: no end of line within"
                        f" {MAX_RECORD_BYTES >> 20} MiB (a quote left open?)"
                    )
            block = self.raw.read(self.read_bytes)
            if not block:  # the last record needs no line end
                cut = (first and record_end(data, first=True, final=True)) or len(data)
                break
            data += block
            seen += count_lines(block)
        if not data:
            return None
        chunk = Chunk(data[:cut], self.line)
        self.pending = data[cut:]
        self.line += count_lines(chunk.data)
        return chunk


def parse_chunk(chunk: Chunk, layout: Layout) -> Iterator[tuple[int, dict[str, str]]]:
    """The chunk's non-blank lines as (line number, known columns stripped); raises
    UnreadableFile naming the line the csv module cannot read."""
    text = chunk.data.decode(layout.encoding, errors="replace")
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            yield (
                chunk.first_line - 1 + reader.line_num,
                {name: row[i].strip() if i < len(row) else "" for name, i in layout.index.items()},
            )
    except csv.Error as exc:
        raise UnreadableFile(f"line {chunk.first_line - 1 + reader.line_num}: {exc}") from None
