"""Staging one lab file for the set-based checks in :mod:`screening.results.store`:
the file's hash (and any NUL byte), then its rows in temp tables of the upload's
transaction. ``lis-csv`` goes straight through PostgreSQL's CSV parser (COPY); other
formats (and files COPY refuses) are read by :mod:`lab_io.formats` and copied as
records, then pivoted to one row per well.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Iterable
from typing import Any, BinaryIO

from lab_io.formats.common import UnreadableFile, WellReading
from lab_io.formats.lis_csv import TARGET_COLUMNS, LisHeader, parse_header

CHUNK = 1 << 20
MAX_CELL = 131_072  # Python's csv field limit: the longest cell any reader accepts
READINGS_BATCH = 50_000


def sha256_of(raw: BinaryIO) -> tuple[bytes, int | None]:
    """The file's SHA-256, and the line of its first NUL byte (None when it has none:
    a text export never holds one; an xlsx is a zip and always does)."""
    digest = hashlib.sha256()
    nul_line: int | None = None
    lines = 1
    raw.seek(0)
    while chunk := raw.read(CHUNK):
        digest.update(chunk)
        if nul_line is None:
            at = chunk.find(b"\x00")
            if at >= 0:
                nul_line = lines + chunk.count(b"\n", 0, at)
            else:
                lines += chunk.count(b"\n")
    raw.seek(0)
    return digest.digest(), nul_line


STAGING = """
DROP TABLE IF EXISTS ingest_readings, ingest_wells, ingest_checked, ingest_lis, ingest_unknown,
                     ingest_plates, ingest_calls, ingest_resulted, ingest_failed;
CREATE TEMP TABLE ingest_readings (line int, plate text, well text, sample text, role text,
                                   target text, ct text) ON COMMIT DROP;
CREATE TEMP TABLE ingest_wells (line int, lines int[], plate text, well text, sample text,
                                role text, orf1ab text, n text, e text, ic text) ON COMMIT DROP;
"""


TAIL = 4096


def _content_end(raw: BinaryIO) -> int:
    """Where the file ends without its trailing blank lines (but with one line end):
    COPY reads a blank line as a ragged row, and one trailing blank line must not send
    a whole lab-day down the slow path."""
    raw.seek(0, 2)
    size = raw.tell()
    raw.seek(max(0, size - TAIL))
    tail = raw.read()
    kept = tail.rstrip(b"\r\n \t")
    end = size - len(tail) + len(kept)
    if end < size:
        end += 2 if tail[len(kept) : len(kept) + 2] == b"\r\n" else 1
    return end


async def _chunks(raw: BinaryIO, end: int) -> AsyncIterator[bytes]:
    while (left := end - raw.tell()) > 0 and (chunk := raw.read(min(CHUNK, left))):
        yield chunk


async def load_lis_csv(conn: Any, raw: BinaryIO, plate: str | None) -> bool:
    """COPY a lis-csv file into ``ingest_wells`` through PostgreSQL's CSV parser.

    Returns False (and leaves nothing behind) when COPY refuses the file, so the
    caller can read it row by row instead.
    """
    end = _content_end(raw)
    raw.seek(0)
    first = raw.readline()
    try:
        header_line, encoding = first.decode("utf-8-sig"), "UTF8"
    except UnicodeDecodeError:
        header_line, encoding = first.decode("gb18030"), "GB18030"
    header = parse_header(header_line.rstrip("\r\n"))
    columns = [f"c{i}" for i in range(header.width)]
    await conn.execute("SAVEPOINT lis_copy")
    try:
        await conn.execute(
            "CREATE TEMP TABLE ingest_lis (line int GENERATED ALWAYS AS IDENTITY (START 2), "
            + ", ".join(f"{c} text" for c in columns)
            + ") ON COMMIT DROP"
        )
        await conn.copy_to_table(
            "ingest_lis", source=_chunks(raw, end), columns=columns, format="csv", encoding=encoding
        )
    except Exception as exc:  # asyncpg's DataError family: ragged rows, bad quoting
        if type(exc).__module__.split(".")[0] != "asyncpg":
            raise
        await conn.execute("ROLLBACK TO SAVEPOINT lis_copy")
        return False
    await conn.execute("RELEASE SAVEPOINT lis_copy")
    lengths = ", ".join(f"coalesce(length({c}), 0)" for c in columns)
    too_long = await conn.fetchval(
        f"SELECT min(line) FROM ingest_lis WHERE greatest(0, {lengths}) > $1", MAX_CELL
    )
    if too_long is not None:
        raise UnreadableFile(
            f"line {too_long}: a cell is longer than {MAX_CELL:,} characters; not a lab export"
        )
    await conn.execute(_lis_to_wells(header), plate)
    return True


def _lis_to_wells(h: LisHeader) -> str:
    def col(index: int | None) -> str:
        return f"c{index}" if index is not None else "NULL"

    targets = [col(h.targets.get(t)) for t in TARGET_COLUMNS]
    role = f"lower(btrim(coalesce({col(h.role)}, '')))"
    return f"""
    INSERT INTO ingest_wells (line, lines, plate, well, sample, role, orf1ab, n, e, ic)
    SELECT line, ARRAY[line], coalesce(nullif(btrim(c{h.plate}), ''), $1::text), btrim(c{h.well}),
           btrim(coalesce(c{h.sample}, '')),
           CASE {role} WHEN '' THEN 'sample' ELSE {role} END,
           {", ".join(targets)}
    FROM ingest_lis
    WHERE coalesce(btrim(c{h.plate}), '') <> '' OR coalesce(btrim(c{h.well}), '') <> ''
       OR coalesce(btrim(c{h.sample}), '') <> ''
    """


async def load_readings(conn: Any, readings: Iterable[WellReading], plate: str | None) -> None:
    """COPY parsed readings (any format) and pivot them into one row per well."""
    batch: list[tuple[Any, ...]] = []
    for r in readings:
        batch.append((r.line, r.plate or plate, r.well, r.sample, r.role, r.target, r.ct))
        if len(batch) >= READINGS_BATCH:
            await conn.copy_records_to_table("ingest_readings", records=batch)
            batch.clear()
    if batch:
        await conn.copy_records_to_table("ingest_readings", records=batch)


PIVOT = """
INSERT INTO ingest_wells (line, lines, plate, well, sample, role, orf1ab, n, e, ic)
SELECT min(line), array_agg(DISTINCT line ORDER BY line), plate, well, sample, role,
       (array_agg(ct ORDER BY line) FILTER (WHERE target = 'ORF1ab'))[1],
       (array_agg(ct ORDER BY line) FILTER (WHERE target = 'N'))[1],
       (array_agg(ct ORDER BY line) FILTER (WHERE target = 'E'))[1],
       (array_agg(ct ORDER BY line) FILTER (WHERE target = 'IC'))[1]
FROM ingest_readings
WHERE target = ANY($1::text[])
GROUP BY plate, well, sample, role
"""

UNKNOWN_TARGETS = """
SELECT line, 'unknown-target' AS type,
       format('target %s is not one of the kit''s (%s)', target, array_to_string($1::text[], ', '))
           AS detail
FROM ingest_readings WHERE NOT (target = ANY($1::text[]))
"""
