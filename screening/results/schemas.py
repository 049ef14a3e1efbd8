from datetime import datetime
from typing import Literal

from screening.schemas import Schema

Format = Literal["lis-csv", "quantstudio", "biorad-cfx", "slan-96p"]


class RowRejection(Schema):
    line: int
    type: str
    detail: str


class PlateSummary(Schema):
    plate: str
    controls: Literal["ok", "failed"]
    wells: int
    calls: dict[str, int] | None = None
    """Tubes of this plate by call (uploads stored before this field have none)."""


class TubeCalls(Schema):
    negative: int
    positive: int
    suspicious: int
    invalid: int
    rerun: int = 0
    """Tubes of a plate whose controls failed: they wait for the plate's re-run."""


class UploadSummary(Schema):
    upload_id: int
    format: Format
    rows: int
    accepted: int
    duplicate: int
    held: int = 0
    """Rows for tubes not received yet: applied when the lab receives the tube."""
    rejected: list[RowRejection]
    rejected_total: int
    plates: list[PlateSummary]
    tubes: TubeCalls
    received_at: datetime | None = None
    """When the file was first uploaded."""
    uploaded_by: str | None = None
    already_uploaded: bool = False
    """True when these bytes (with the same format and plate fields) came before:
    nothing changed, and this is the first upload's summary."""


class UploadListed(Schema):
    """One upload in a lab's list: when, by whom, which file, and its summary's figures."""

    upload_id: int
    filename: str | None
    format: Format
    received_at: datetime
    uploaded_by: str | None = None
    rows: int
    accepted: int
    duplicate: int
    held: int = 0
    rejected_total: int
    plates: list[PlateSummary]
    tubes: TubeCalls


class UploadList(Schema):
    items: list[UploadListed]


class RerunRead(Schema):
    """A plate whose controls failed, waiting for its re-run (or to be given up)."""

    plate: str
    failed_at: datetime
    upload_id: int
    filename: str | None
    tubes: int


class RerunList(Schema):
    items: list[RerunRead]


class RerunAbandoned(Schema):
    plate: str
    status: Literal["abandoned"]
    invalid: int
    """Tubes now invalid: their people must be swabbed again."""
