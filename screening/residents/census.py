"""The census import: a CSV of residents, streamed, registered in batches, paced.

The file is never read whole, and never held in the service process as Python objects:
a thread settles the encoding, reads the header and cuts the bytes at record ends
into chunks of about ``IMPORT_BATCH`` lines (``screening.residents.census_csv``). Each
chunk is parsed, checked and sealed (ID rules, HMAC, three AES-GCM encryptions, a
fresh code a line) off the event loop: in a thread for small files, and for big ones
(``SCREENING_CENSUS_PROCESS_ABOVE_BYTES``) in one worker process at niceness 10, a
batch ahead of the insert. The batch comes back as twelve flat lists, is stored by
one ``INSERT ... SELECT FROM unnest(...)`` sent through asyncpg on the request's
connection (inside its one transaction), whose answers come back as three arrays;
the worker then judges them (an ID number known under another name) and renders the
batch's codes and bad lines as JSON fragments. The answer for a million lines is
those fragments, not a million objects.

What a clerk's scan, answered by the same process during a big import, must not feel
(bench/README.md, "A district's census while scans go on"):

- *The garbage collector.* Batches held as rows, dataclasses and records kept tens of
  thousands of container objects alive per batch; they survived into the oldest
  generation and set off full collections of the whole heap, which stopped the
  process (event loop included) for 150-190 ms every 3 s or so. Bytes, flat lists
  and JSON fragments are all the service process now holds.
- *The GIL.* Parsing in a thread and unpickling dataclasses in the executor's thread
  took the GIL from the event loop; both moved into the worker.
- *The database and the cores.* PostgreSQL writes each batch's rows, five index
  entries each and their WAL; a scan's commit waits for the WAL before it, the import's
  included. ``SCREENING_CENSUS_DUTY`` paces the import: after each batch it rests
  (1 - duty) / duty times as long as the batch took, so it takes at most that share of
  the wall time, and a slower batch (a busy machine) earns a longer rest. The worker
  checks the next batch during that rest, not while PostgreSQL stores this one: on two
  cores the import then holds one at a time, and the scans keep the other.
- *The WAL files.* A million lines write about 800 MB of WAL, a new 16 MB file every
  3 s; at PostgreSQL's defaults each is filled with zeros while every commit waits.
  The embedded server runs without (``screening.db.WAL_SETTINGS``).
"""

from __future__ import annotations

import asyncio
import io
import logging
import multiprocessing as mp
import os
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import IO, Any, TypeVar

import anyio
import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from screening.errors import UnreadableFile
from screening.privacy import Vault
from screening.residents.census_csv import CensusFile, Chunk, Layout, parse_chunk
from screening.residents.identity import InvalidIdNumber
from screening.residents.service import (
    Answers,
    IdentityConflict,
    Registration,
    district_ids,
    judge,
    seal,
    store_columns,
    validate_person,
)

log = logging.getLogger(__name__)

IMPORT_BATCH = 500
"""Lines a batch. Smaller batches are smaller stalls for a scan that lands on one (the
insert's index work, its arrays encoded on the event loop): at 2,000 lines a batch the
scans' p99 during a 300,000-line import was 27-30 ms, at 500 it was 21-22 ms (10 ms
without an import; bench/README.md), for an import about 20% slower."""
WORKER_NICENESS = 10
T = TypeVar("T")


@dataclass
class Roll:
    """A checked batch as counting its answers needs it: the good lines, each one's
    name and ID hash in the order stored, and the bad lines with their reasons."""

    lines: list[int] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    hashes: list[bytes] = field(default_factory=list)
    rejected: list[tuple[int, str, str]] = field(default_factory=list)


@dataclass
class Checked:
    """A chunk checked and sealed: ``params`` to store (``Sealed.params``), the roll to
    count the answers by, or why the file cannot be read."""

    params: dict[str, list[Any]]
    roll: Roll
    unreadable: str | None = None


def check_chunk(chunk: Chunk, layout: Layout, districts: dict[str, int], vault: Vault) -> Checked:
    """Parse, check and seal one chunk: the CPU-heavy part, run in the worker process
    for big files (in a thread for small ones)."""
    roll = Roll()
    people = []
    try:
        for line, row in parse_chunk(chunk, layout):
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
                roll.rejected.append((line, "invalid-id-number", str(exc)))
                continue
            except ValueError as exc:
                roll.rejected.append((line, "invalid-request", str(exc)))
                continue
            district_id = districts.get(row["district"])
            if district_id is None:
                detail = f"没有代码为“{row['district']}”的区，请核对。"
                roll.rejected.append((line, "unknown-district", detail))
                continue
            roll.lines.append(line)
            roll.names.append(name)
            people.append(
                Registration(
                    row["id_type"], id_number, name, phone, district_id, community, address
                )
            )
    except UnreadableFile as exc:
        return Checked({}, Roll(), unreadable=str(exc))
    sealed = seal(vault, people)
    roll.hashes = sealed.hashes
    return Checked(sealed.params, roll)


@dataclass
class Counted:
    """A stored batch, counted and rendered: JSON fragments of its codes and of its bad
    lines (in line order)."""

    created: int
    existing: int
    codes: bytes
    rejected: bytes


def count_batch(vault: Vault, roll: Roll, answers: Answers | None) -> Counted:
    """Judge a stored batch's answers and render them (worker process, or thread)."""
    rejected = list(roll.rejected)
    created = existing = 0
    codes = []
    if answers is not None:
        outcomes = judge(vault, roll.names, roll.hashes, answers.rows())
        for line, outcome in zip(roll.lines, outcomes, strict=True):
            if outcome.resident_code is None:
                rejected.append((line, IdentityConflict.type, IdentityConflict.DETAIL))
                continue
            created += outcome.created
            existing += not outcome.created
            codes.append(
                b'{"line":%d,"resident_code":"%s"}' % (line, outcome.resident_code.encode())
            )
    bad = orjson.dumps(
        [{"line": line, "type": kind, "detail": detail} for line, kind, detail in sorted(rejected)]
    )
    return Counted(created, existing, b",".join(codes), bad[1:-1])


_pool: ProcessPoolExecutor | None = None


def _forget_pool(broken: ProcessPoolExecutor) -> None:
    global _pool
    if _pool is broken:
        _pool = None
    broken.shutdown(wait=False, cancel_futures=True)


def exit_when_orphaned(
    parent: int,
    *,
    every: float = 1.0,
    getppid: Callable[[], int] = os.getppid,
    sleep: Callable[[float], None] = time.sleep,
    leave: Callable[[int], object] = os._exit,
) -> None:
    """Wait while ``parent`` is this process's parent, then leave."""
    while getppid() == parent:
        sleep(every)
    leave(0)


def _start_worker(niceness: int) -> None:
    """The worker process's start: a lower CPU priority (a census can wait a little, a
    clerk's scan cannot), and a watch that ends it with the service. uvicorn ends the
    service by re-raising SIGTERM, so the executor's exit hook never runs, and the
    worker, which holds both ends of its call queue, would wait for work for ever: one
    orphan per restart."""
    os.nice(niceness)
    watch = threading.Thread(
        target=exit_when_orphaned, args=(os.getppid(),), name="census-orphan-watch", daemon=True
    )
    watch.start()


def _worker_pool() -> ProcessPoolExecutor:
    """One worker process, started on the first big census and kept (spawned, not
    forked: the service's threads and connections stay out of it), at a lower CPU
    priority."""
    global _pool
    if _pool is None:
        _pool = ProcessPoolExecutor(
            max_workers=1,
            mp_context=mp.get_context("spawn"),
            initializer=_start_worker,
            initargs=(WORKER_NICENESS,),
        )
    return _pool


@dataclass
class Tally:
    """The import's answer so far: counts and JSON fragments, one of each per batch."""

    created: int = 0
    existing: int = 0
    rejected: list[bytes] = field(default_factory=list)
    codes: list[bytes] = field(default_factory=list)

    def add(self, counted: Counted) -> None:
        self.created += counted.created
        self.existing += counted.existing
        if counted.rejected:
            self.rejected.append(counted.rejected)
        if counted.codes:
            self.codes.append(counted.codes)

    def chunks(self) -> Iterator[bytes]:
        """The ImportSummary as JSON, in pieces."""
        yield b'{"created":%d,"existing":%d,"rejected":[' % (self.created, self.existing)
        for i, fragment in enumerate(self.rejected):
            yield (b"," if i else b"") + fragment
        yield b'],"codes":['
        for i, fragment in enumerate(self.codes):
            yield (b"," if i else b"") + fragment
        yield b"]}"


class Pacer:
    """Holds an import to at most ``duty`` of the wall time: after each batch it rests
    (1 - duty) / duty times as long as the batch took (1: never rests)."""

    def __init__(
        self,
        duty: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if not 0 < duty <= 1:
            raise ValueError(f"a census duty is a share of the time in (0, 1], not {duty}")
        self.duty = duty
        self.clock = clock
        self.sleep = sleep
        self.since = clock()
        self.rested = 0.0

    async def rest(self) -> None:
        """Rest after a batch (the time since the last rest)."""
        if self.duty < 1:
            pause = (self.clock() - self.since) * (1 - self.duty) / self.duty
            await self.sleep(pause)
            self.rested += pause
        self.since = self.clock()


async def import_census(
    session: AsyncSession,
    vault: Vault,
    raw: IO[bytes],
    *,
    process_above_bytes: int | None = None,
    duty: float = 1.0,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> Tally:
    """Register every good line of a census CSV; each bad line comes back with its
    reason (an ID number under another name: ``identity-conflict``).

    A file larger than ``process_above_bytes`` is checked and sealed in a worker
    process, a smaller one in a thread; one batch ahead of the insert: while the import
    rests after a batch, or (flat out) while the batch is stored.
    ``duty`` paces the batches (``Pacer``); ``sleep`` is how it rests.
    """
    started = time.monotonic()
    pacer = Pacer(duty, sleep=sleep)
    districts = await district_ids(session)
    size = raw.seek(0, io.SEEK_END)
    raw.seek(0)
    pool = (
        _worker_pool() if process_above_bytes is not None and size > process_above_bytes else None
    )
    loop = asyncio.get_running_loop()

    async def offload(work: Callable[..., T], *args: Any) -> T:
        nonlocal pool
        if pool is not None:
            try:
                return await loop.run_in_executor(pool, work, *args)
            except BrokenProcessPool:
                # the worker died (killed, out of memory): carry on in a thread, and
                # let the next big census start a fresh one
                log.warning("census worker process died; continuing in a thread")
                _forget_pool(pool)
                pool = None
        return await anyio.to_thread.run_sync(work, *args)

    census = await anyio.to_thread.run_sync(CensusFile, raw)
    tally = Tally()
    batches = 0
    flat_out = duty >= 1  # never rests, so checks overlap with stores
    pending: asyncio.Future[Checked] | None = None

    async def next_batch() -> asyncio.Future[Checked] | None:
        chunk = await anyio.to_thread.run_sync(census.next_chunk, IMPORT_BATCH)
        if chunk is None:
            return None
        return asyncio.ensure_future(offload(check_chunk, chunk, census.layout, districts, vault))

    try:
        pending = await next_batch()
        while pending is not None:
            batch = await pending
            if batch.unreadable is not None:
                raise UnreadableFile(batch.unreadable)
            if flat_out:  # the next batch is checked while this one is stored
                pending = await next_batch()
            answers = await store_columns(session, batch.params) if batch.roll.lines else None
            tally.add(await offload(count_batch, vault, batch.roll, answers))
            batches += 1
            if not flat_out:
                # paced: the next batch is checked while the import rests, never while
                # PostgreSQL stores this one, so the import holds one core at a time and
                # scans keep the other (bench/README.md: their p99 during a census)
                pending = await next_batch()
                if pending is not None:
                    await pacer.rest()
    finally:
        if pending is not None and not pending.done():
            pending.cancel()
    log.info(
        "census imported",
        extra={
            "batches": batches,
            "residents_created": tally.created,
            "residents_existing": tally.existing,
            "seconds": round(time.monotonic() - started, 1),
            "rested_seconds": round(pacer.rested, 1),
            "duty": duty,
        },
    )
    return tally
