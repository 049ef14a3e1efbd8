"""The census import: a CSV of residents, streamed, registered in batches.

The file is never read whole: a first pass over its bytes settles the encoding
(UTF-8, else GB18030, the two a community office's spreadsheet saves), then lines are
read a batch at a time in a thread. Each batch's CPU work (ID checks, hashing,
encryption) runs off the event loop: in a thread for small files, and for big ones
(``SCREENING_CENSUS_PROCESS_ABOVE_BYTES``) in one worker process, a batch ahead of
the insert, because a thread doing pure-Python work still takes the GIL from the
event loop in 5 ms slices and a clerk's scans answered by the same process would
queue behind it. Only the one ``INSERT ... SELECT FROM unnest(...)`` per batch, sent
through asyncpg, runs on the loop.

The answer for a million lines is rendered as JSON fragments batch by batch, not as
a million pydantic objects.
"""

from __future__ import annotations

import asyncio
import codecs
import csv
import io
import logging
import multiprocessing as mp
import os
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import IO

import anyio
import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from screening.errors import UnreadableFile
from screening.privacy import Vault
from screening.residents.identity import InvalidIdNumber
from screening.residents.service import (
    IdentityConflict,
    Registration,
    Sealed,
    district_ids,
    judge,
    seal,
    store,
    validate_person,
)

log = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("id_type", "id_number", "name", "district")
OPTIONAL_COLUMNS = ("phone", "nationality", "community", "address")
IMPORT_BATCH = 2_000
WORKER_NICENESS = 10
_PROBE_BYTES = 1 << 20


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


class CensusReader:
    """Lines of a census CSV, a batch at a time; header on line 1 (any column order)."""

    def __init__(self, raw: IO[bytes]) -> None:
        encoding = detect_encoding(raw)
        self.text = io.TextIOWrapper(raw, encoding=encoding, errors="replace", newline="")
        self.reader = csv.reader(self.text)
        try:
            header = [h.strip().lower() for h in next(self.reader)]
        except (StopIteration, csv.Error):
            self.close()
            raise UnreadableFile("the file is empty; expected a header line") from None
        missing = [c for c in REQUIRED_COLUMNS if c not in header]
        if missing:
            self.close()
            raise UnreadableFile(
                f"line 1: the header lacks {', '.join(missing)}; expected"
                f" {','.join(REQUIRED_COLUMNS)} (optional: {','.join(OPTIONAL_COLUMNS)})"
            )
        self.index = {
            name: header.index(name)
            for name in (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS)
            if name in header
        }

    def rows(self, limit: int) -> Iterator[tuple[int, dict[str, str]]]:
        """Up to ``limit`` non-blank data lines as (line number, row)."""
        taken = 0
        try:
            for row in self.reader:
                if not any(cell.strip() for cell in row):
                    continue
                yield (
                    self.reader.line_num,
                    {
                        name: row[i].strip() if i < len(row) else ""
                        for name, i in self.index.items()
                    },
                )
                taken += 1
                if taken >= limit:
                    return
        except csv.Error as exc:
            raise UnreadableFile(f"line {self.reader.line_num}: {exc}") from None

    def close(self) -> None:
        self.text.detach()  # the upload's own file stays open for its owner to close


@dataclass
class Batch:
    """One batch: its good lines sealed for storage, its bad lines with their reasons."""

    lines: list[int] = field(default_factory=list)
    people: list[Registration] = field(default_factory=list)
    rejected: list[tuple[int, str, str]] = field(default_factory=list)
    sealed: Sealed | None = None


Rows = list[tuple[int, dict[str, str]]]


def read_rows(reader: CensusReader) -> Rows:
    """The next batch of lines (worker thread); empty at the end."""
    return list(reader.rows(IMPORT_BATCH))


def check_and_seal(rows: Rows, districts: dict[str, int], vault: Vault) -> Batch:
    """Check each line and seal the good ones: the CPU-heavy part, run in a worker
    thread, or in a worker process for big files (no fight for the GIL with the loop)."""
    batch = Batch()
    for line, row in rows:
        try:
            id_number, name, phone, community, address = validate_person(
                row["id_type"],
                row["id_number"],
                row["name"],
                row.get("phone"),
                nationality=row.get("nationality"),
                community=row.get("community"),
                address=row.get("address"),
            )
        except InvalidIdNumber as exc:
            batch.rejected.append((line, "invalid-id-number", str(exc)))
            continue
        except ValueError as exc:
            batch.rejected.append((line, "invalid-request", str(exc)))
            continue
        district_id = districts.get(row["district"])
        if district_id is None:
            detail = f"没有代码为“{row['district']}”的区，请核对。"
            batch.rejected.append((line, "unknown-district", detail))
            continue
        batch.lines.append(line)
        batch.people.append(
            Registration(row["id_type"], id_number, name, phone, district_id, community, address)
        )
    batch.sealed = seal(vault, batch.people)
    return batch


_pool: ProcessPoolExecutor | None = None


def _forget_pool(broken: ProcessPoolExecutor) -> None:
    global _pool
    if _pool is broken:
        _pool = None
    broken.shutdown(wait=False, cancel_futures=True)


def _worker_pool() -> ProcessPoolExecutor:
    """One worker process, started on the first big census and kept (spawned, not
    forked: the service's threads and connections stay out of it), at a lower CPU
    priority: a census can wait a little, a clerk's scan cannot."""
    global _pool
    if _pool is None:
        _pool = ProcessPoolExecutor(
            max_workers=1,
            mp_context=mp.get_context("spawn"),
            initializer=os.nice,  # the import yields the CPU to scans and queries
            initargs=(WORKER_NICENESS,),
        )
    return _pool


@dataclass
class Tally:
    created: int = 0
    existing: int = 0
    rejected: list[tuple[int, str, str]] = field(default_factory=list)
    codes: list[bytes] = field(default_factory=list)  # JSON fragments, one per batch

    def add(
        self, vault: Vault, batch: Batch, answers: list[tuple[str | None, bool, bytes | None]]
    ) -> None:
        """Judge a stored batch and render its codes (worker thread)."""
        assert batch.sealed is not None
        outcomes = judge(vault, batch.sealed, answers)
        fragment = []
        for line, outcome in zip(batch.lines, outcomes, strict=True):
            if outcome.resident_code is None:
                batch.rejected.append((line, IdentityConflict.type, IdentityConflict.DETAIL))
                continue
            self.created += outcome.created
            self.existing += not outcome.created
            fragment.append(
                b'{"line":%d,"resident_code":"%s"}' % (line, outcome.resident_code.encode())
            )
        if fragment:
            self.codes.append(b",".join(fragment))
        self.rejected.extend(sorted(batch.rejected))

    def chunks(self) -> Iterator[bytes]:
        """The ImportSummary as JSON, in pieces."""
        rejected = [
            {"line": line, "type": kind, "detail": detail} for line, kind, detail in self.rejected
        ]
        yield b'{"created":%d,"existing":%d,"rejected":' % (self.created, self.existing)
        yield orjson.dumps(rejected)
        yield b',"codes":['
        for i, fragment in enumerate(self.codes):
            yield (b"," if i else b"") + fragment
        yield b"]}"


async def import_census(
    session: AsyncSession,
    vault: Vault,
    raw: IO[bytes],
    *,
    process_above_bytes: int | None = None,
) -> Tally:
    """Register every good line of a census CSV; each bad line comes back with its
    reason (an ID number under another name: ``identity-conflict``).

    A file larger than ``process_above_bytes`` is checked and sealed in a worker
    process, one batch ahead of the insert (pipelined); a smaller one in a thread.
    """
    districts = await district_ids(session)
    size = raw.seek(0, io.SEEK_END)
    raw.seek(0)
    pool = (
        _worker_pool() if process_above_bytes is not None and size > process_above_bytes else None
    )
    loop = asyncio.get_running_loop()

    async def checked(rows: Rows) -> Batch:
        nonlocal pool
        if pool is not None:
            try:
                return await loop.run_in_executor(pool, check_and_seal, rows, districts, vault)
            except BrokenProcessPool:
                # the worker died (killed, out of memory): carry on in a thread, and
                # let the next big census start a fresh one
                log.warning("census worker process died; continuing in a thread")
                _forget_pool(pool)
                pool = None
        return await anyio.to_thread.run_sync(check_and_seal, rows, districts, vault)

    reader = await anyio.to_thread.run_sync(CensusReader, raw)
    tally = Tally()
    pending: asyncio.Future[Batch] | None = None
    try:
        rows = await anyio.to_thread.run_sync(read_rows, reader)
        pending = asyncio.ensure_future(checked(rows)) if rows else None
        while pending is not None:
            batch = await pending
            rows = await anyio.to_thread.run_sync(read_rows, reader)
            pending = asyncio.ensure_future(checked(rows)) if rows else None
            if batch.sealed is not None and batch.people:
                answers = await store(session, batch.sealed)
                await anyio.to_thread.run_sync(tally.add, vault, batch, answers)
            else:
                tally.rejected.extend(sorted(batch.rejected))
    finally:
        if pending is not None and not pending.done():
            pending.cancel()
        reader.close()
    return tally
