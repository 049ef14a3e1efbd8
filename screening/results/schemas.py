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


class UploadSummary(Schema):
    upload_id: int
    format: Format
    rows: int
    accepted: int
    duplicate: int
    rejected: list[RowRejection]
    rejected_total: int
    plates: list[PlateSummary]
    tubes: TubeCalls


class UploadListed(Schema):
    """One upload in a lab's list: when, which file, and its summary's figures."""

    upload_id: int
    filename: str | None
    format: Format
    received_at: datetime
    rows: int
    accepted: int
    duplicate: int
    rejected_total: int
    plates: list[PlateSummary]
    tubes: TubeCalls


class UploadList(Schema):
    items: list[UploadListed]
