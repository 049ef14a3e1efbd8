"""Lab uploads: who may upload, recognising the same file again, and handing the
file to :mod:`lab_io.ingest` inside the request's transaction."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any, BinaryIO

import anyio
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from lab_io.formats import READERS, UnreadableFile, WellReading, detect_format, plate_from_filename
from lab_io.ingest import READINGS_BATCH, KitRule, ingest_file, sha256_of
from screening import metrics
from screening.db import raw_connection
from screening.errors import Forbidden, NotFound
from screening.errors import UnreadableFile as UnreadableFileError
from screening.reference.models import Lab
from screening.results.models import Upload
from screening.results.schemas import UploadList, UploadListed, UploadSummary
from screening.retests.service import TubeCall, actor_of, after_results
from screening.tokens.service import Principal

HEAD_BYTES = 1 << 16


async def _lab(session: AsyncSession, principal: Principal, lab_code: str) -> Lab:
    lab = await session.scalar(select(Lab).where(Lab.code == lab_code))
    if lab is None:
        raise NotFound(f"no lab {lab_code!r}")
    if principal.role == "lab" and principal.lab_id != lab.id:
        raise Forbidden("a lab token uploads for its own lab only")
    return lab


async def _batches(readings: Iterator[WellReading]) -> AsyncIterator[list[WellReading]]:
    """Parse off the event loop, a batch at a time."""

    def take() -> list[WellReading]:
        return list(itertools.islice(readings, READINGS_BATCH))

    while batch := await anyio.to_thread.run_sync(take):
        yield batch


async def upload_results(
    session: AsyncSession,
    principal: Principal,
    *,
    lab_code: str,
    raw: BinaryIO,
    filename: str | None,
    fmt: str | None,
    plate: str | None,
) -> UploadSummary:
    lab = await _lab(session, principal, lab_code)
    digest = await anyio.to_thread.run_sync(sha256_of, raw)
    # the same file sent twice at once: the second waits, then finds the first
    await session.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
        {"key": f"upload:{lab.id}:{digest.hex()}"},
    )
    known = await session.scalar(
        select(Upload.summary).where(Upload.lab_id == lab.id, Upload.sha256 == digest)
    )
    if known is not None:
        return UploadSummary.model_validate(known)
    head = raw.read(HEAD_BYTES)
    raw.seek(0)
    fmt = fmt or detect_format(head, filename)
    if fmt is None:
        raise UnreadableFileError(
            "cannot tell the file's format; send format (lis-csv, quantstudio, biorad-cfx,"
            " slan-96p)"
        )
    if fmt == "biorad-cfx":
        plate = plate or plate_from_filename(filename)
    kit = KitRule.from_kit(lab.kit)
    upload_id = await session.scalar(
        text(
            "INSERT INTO uploads (lab_id, sha256, format, filename, kit, summary)"
            " VALUES (:lab, :sha, :fmt, :name, CAST(:kit AS jsonb), '{}') RETURNING id"
        ),
        {"lab": lab.id, "sha": digest, "fmt": fmt, "name": filename, "kit": _json(lab.kit)},
    )
    conn = await raw_connection(session)
    reader = READERS[fmt]

    def readings() -> AsyncIterator[list[WellReading]]:
        raw.seek(0)
        return _batches(reader(raw, kit_dyes=kit.dyes))

    try:
        summary: dict[str, Any] = await ingest_file(
            conn,
            raw,
            upload_id=upload_id,
            lab_id=lab.id,
            fmt=fmt,
            kit=kit,
            plate=plate,
            readings=readings,
            after_store=lambda conn, handed: after_results(
                conn,
                [TubeCall(serial, call) for serial, call in handed],
                f"{actor_of(principal)} upload {upload_id}",
            ),
        )
    except (UnreadableFile, UnicodeDecodeError) as exc:
        raise UnreadableFileError(str(exc)) from None
    if summary["rows"] == 0:
        raise UnreadableFileError("the file holds no data rows")
    await session.execute(
        text("UPDATE uploads SET summary = CAST(:summary AS jsonb) WHERE id = :id"),
        {"summary": _json(summary), "id": upload_id},
    )
    metrics.INGESTED_ROWS.inc(int(summary["accepted"]))  # a file sent again adds nothing
    return UploadSummary.model_validate(summary)


def _json(value: Any) -> str:
    import orjson

    return orjson.dumps(value).decode()


async def read_upload(
    session: AsyncSession, principal: Principal, *, lab_code: str, upload_id: int
) -> UploadSummary:
    lab = await _lab(session, principal, lab_code)
    summary = await session.scalar(
        select(Upload.summary).where(Upload.id == upload_id, Upload.lab_id == lab.id)
    )
    if summary is None:
        raise NotFound(f"no upload {upload_id} for lab {lab_code}")
    return UploadSummary.model_validate(summary)


async def list_uploads(
    session: AsyncSession, principal: Principal, *, lab_code: str, hours: float, limit: int
) -> UploadList:
    """The lab's uploads of the last ``hours``, newest first."""
    lab = await _lab(session, principal, lab_code)
    rows = (
        await session.execute(
            select(Upload.id, Upload.filename, Upload.received_at, Upload.summary)
            .where(
                Upload.lab_id == lab.id,
                Upload.received_at >= func.now() - timedelta(hours=hours),
            )
            .order_by(Upload.id.desc())
            .limit(limit)
        )
    ).all()
    return UploadList(
        items=[
            UploadListed(
                **UploadSummary.model_validate(row.summary).model_dump(exclude={"rejected"}),
                filename=row.filename,
                received_at=row.received_at,
            )
            for row in rows
        ]
    )
