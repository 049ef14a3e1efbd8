"""Lab uploads: who may upload, recognising the same file again, and handing the
file to :mod:`screening.results.store` inside the request's transaction; the plates
waiting for a re-run."""

from __future__ import annotations

import csv
import itertools
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta
from typing import Any, BinaryIO

import anyio
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from lab_io.formats import READERS, UnreadableFile, WellReading, detect_format, plate_from_filename
from lab_io.formats.slan import XLSX_MAGIC
from lab_io.kit import KitRule, UnreadableKit
from screening import metrics
from screening.db import raw_connection
from screening.errors import Conflict, Forbidden, NotFound, Unprocessable
from screening.errors import UnreadableFile as UnreadableFileError
from screening.reference.models import Lab
from screening.results import reruns
from screening.results.models import Upload
from screening.results.schemas import (
    RerunAbandoned,
    RerunList,
    UploadList,
    UploadListed,
    UploadSummary,
)
from screening.results.staging import READINGS_BATCH, sha256_of
from screening.results.store import ingest_file
from screening.retests.service import actor_of
from screening.tokens.service import Principal

HEAD_BYTES = 1 << 16
MAX_FILENAME = 300


class UnreadableKitError(Conflict):
    type, title = "unreadable-kit", "The lab's kit names targets no format can read"


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
    if filename is not None and len(filename) > MAX_FILENAME:
        raise Unprocessable(
            f"the file name is longer than {MAX_FILENAME} characters; rename the file",
            errors=[{"loc": ["body", "file"], "msg": f"file name over {MAX_FILENAME} characters"}],
        )
    try:
        kit = KitRule.from_kit(lab.kit)
    except UnreadableKit as exc:
        raise UnreadableKitError(
            f"lab {lab.code}'s kit cannot be read ({exc}); an admin must change it with"
            f" PATCH /labs/{lab.code}"
        ) from None
    digest, nul_line = await anyio.to_thread.run_sync(sha256_of, raw)
    if nul_line is not None and not raw.read(len(XLSX_MAGIC)).startswith(XLSX_MAGIC):
        raise UnreadableFileError(
            f"line {nul_line} holds a NUL byte: the file is binary or damaged, not a lab export"
        )
    raw.seek(0)
    fields = {"format_field": fmt or "", "plate_field": plate or ""}
    # the same file sent twice at once: the second waits, then finds the first
    await session.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
        {"key": f"upload:{lab.id}:{digest.hex()}:{fields['format_field']}:{plate or ''}"},
    )
    known = (
        await session.execute(
            select(Upload.summary, Upload.received_at, Upload.uploaded_by).where(
                Upload.lab_id == lab.id,
                Upload.sha256 == digest,
                Upload.format_field == fields["format_field"],
                Upload.plate_field == fields["plate_field"],
            )
        )
    ).first()
    if known is not None:
        return _summary(known.summary, known.received_at, known.uploaded_by, again=True)
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
    actor = actor_of(principal)
    row = (
        await session.execute(
            text(
                "INSERT INTO uploads (lab_id, sha256, format, filename, kit, summary,"
                " format_field, plate_field, uploaded_by)"
                " VALUES (:lab, :sha, :fmt, :name, CAST(:kit AS jsonb), '{}', :format_field,"
                " :plate_field, left(coalesce((SELECT label FROM api_tokens WHERE id = :token),"
                " :actor), 60))"
                " RETURNING id, received_at, uploaded_by"
            ),
            {
                "lab": lab.id,
                "sha": digest,
                "fmt": fmt,
                "name": filename,
                "kit": _json(lab.kit),
                "actor": _uploader(principal),
                "token": principal.token_id,
                **fields,
            },
        )
    ).one()
    upload_id = row.id
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
            actor=f"{actor} upload {upload_id}",
        )
    except (UnreadableFile, UnicodeDecodeError) as exc:
        raise UnreadableFileError(str(exc)) from None
    except csv.Error as exc:
        # Python's csv module refuses cells over 131,072 characters (and NULs)
        raise UnreadableFileError(f"the file is not a readable CSV: {exc}") from None
    if summary["rows"] == 0:
        raise UnreadableFileError("the file holds no data rows")
    await session.execute(
        text("UPDATE uploads SET summary = CAST(:summary AS jsonb) WHERE id = :id"),
        {"summary": _json(summary), "id": upload_id},
    )
    metrics.INGESTED_ROWS.inc(int(summary["accepted"]))  # a file sent again adds nothing
    return _summary(summary, row.received_at, row.uploaded_by, again=False)


def _uploader(principal: Principal) -> str:
    """Who uploaded, as the lab page shows it when the token has no label."""
    if principal.role == "lab":
        return f"实验室令牌 {principal.token_id}"
    return "指挥部" if principal.token_id is None else f"指挥部令牌 {principal.token_id}"


def _summary(
    stored: dict[str, Any], received_at: datetime, uploaded_by: str | None, *, again: bool
) -> UploadSummary:
    return UploadSummary.model_validate(
        {
            **stored,
            "received_at": received_at,
            "uploaded_by": uploaded_by,
            "already_uploaded": again,
        }
    )


def _json(value: Any) -> str:
    import orjson

    return orjson.dumps(value).decode()


async def read_upload(
    session: AsyncSession, principal: Principal, *, lab_code: str, upload_id: int
) -> UploadSummary:
    lab = await _lab(session, principal, lab_code)
    row = (
        await session.execute(
            select(Upload.summary, Upload.received_at, Upload.uploaded_by).where(
                Upload.id == upload_id, Upload.lab_id == lab.id
            )
        )
    ).first()
    if row is None:
        raise NotFound(f"no upload {upload_id} for lab {lab_code}")
    return _summary(row.summary, row.received_at, row.uploaded_by, again=False)


async def list_uploads(
    session: AsyncSession, principal: Principal, *, lab_code: str, hours: float, limit: int
) -> UploadList:
    """The lab's uploads of the last ``hours``, newest first."""
    lab = await _lab(session, principal, lab_code)
    rows = (
        await session.execute(
            select(
                Upload.id, Upload.filename, Upload.received_at, Upload.uploaded_by, Upload.summary
            )
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
                **UploadSummary.model_validate(row.summary).model_dump(
                    exclude={"rejected", "received_at", "uploaded_by", "already_uploaded"}
                ),
                filename=row.filename,
                received_at=row.received_at,
                uploaded_by=row.uploaded_by,
            )
            for row in rows
        ]
    )


async def list_reruns(session: AsyncSession, principal: Principal, *, lab_code: str) -> RerunList:
    lab = await _lab(session, principal, lab_code)
    return await reruns.list_reruns(session, lab_id=lab.id)


async def abandon_rerun(
    session: AsyncSession, principal: Principal, *, lab_code: str, plate: str
) -> RerunAbandoned:
    lab = await _lab(session, principal, lab_code)
    return await reruns.abandon_plate(
        session, lab_id=lab.id, plate=plate, actor=f"{actor_of(principal)} abandoned"
    )
