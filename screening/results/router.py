from typing import Annotated

from fastapi import APIRouter, File, Form, Query, UploadFile

from screening.auth import AdminOrLab
from screening.db import DbSession, HeavySession
from screening.results import service
from screening.results.schemas import (
    Format,
    RerunAbandoned,
    RerunList,
    UploadList,
    UploadSummary,
)
from screening.schemas import Id64

router = APIRouter(tags=["results"])


@router.post("/labs/{lab}/results", response_model=UploadSummary)
async def upload_results(
    lab: str,
    session: HeavySession,
    principal: AdminOrLab,
    file: Annotated[UploadFile, File(description="the instrument or LIS export")],
    format: Annotated[Format | None, Form(description="detected when absent")] = None,
    plate: Annotated[str | None, Form(max_length=100, description="for files naming none")] = None,
) -> UploadSummary:
    """Upload a plate export: good rows are stored and called, bad rows come back."""
    return await service.upload_results(
        session,
        principal,
        lab_code=lab,
        raw=file.file,
        filename=file.filename,
        fmt=format,
        plate=plate,
    )


@router.get("/labs/{lab}/uploads", response_model=UploadList)
async def list_uploads(
    lab: str,
    session: DbSession,
    principal: AdminOrLab,
    hours: Annotated[float, Query(gt=0, le=24 * 31)] = 24,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> UploadList:
    """The lab's uploads of the last ``hours`` (default a day), newest first."""
    return await service.list_uploads(session, principal, lab_code=lab, hours=hours, limit=limit)


@router.get("/labs/{lab}/uploads/{upload_id}", response_model=UploadSummary)
async def read_upload(
    lab: str, upload_id: Id64, session: DbSession, principal: AdminOrLab
) -> UploadSummary:
    """An earlier upload's summary."""
    return await service.read_upload(session, principal, lab_code=lab, upload_id=upload_id)


@router.get("/labs/{lab}/reruns", response_model=RerunList)
async def list_reruns(lab: str, session: DbSession, principal: AdminOrLab) -> RerunList:
    """Plates whose controls failed, waiting for a re-run (oldest first)."""
    return await service.list_reruns(session, principal, lab_code=lab)


@router.post("/labs/{lab}/reruns/{plate}/abandon", response_model=RerunAbandoned)
async def abandon_rerun(
    lab: str, plate: str, session: DbSession, principal: AdminOrLab
) -> RerunAbandoned:
    """Give up a plate's re-run: its waiting tubes become invalid (people re-swabbed)."""
    return await service.abandon_rerun(session, principal, lab_code=lab, plate=plate)
