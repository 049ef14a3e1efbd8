from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from screening.db import Base

CALLS = "('negative', 'positive', 'suspicious', 'invalid')"


class Upload(Base):
    """One instrument file as received; the same bytes again are recognised by hash."""

    __tablename__ = "uploads"
    __table_args__ = (
        UniqueConstraint(
            "lab_id", "sha256", "format_field", "plate_field", name="uq_uploads_lab_sha256_fields"
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    lab_id: Mapped[int] = mapped_column(ForeignKey("labs.id"))
    sha256: Mapped[bytes] = mapped_column(LargeBinary)
    format: Mapped[str] = mapped_column(String(20))
    filename: Mapped[str | None] = mapped_column(String(300))
    kit: Mapped[dict[str, Any]] = mapped_column(JSONB)
    summary: Mapped[dict[str, Any]] = mapped_column(JSONB)
    # the upload's own format and plate fields ("" when absent): the same bytes with
    # other fields are another upload
    format_field: Mapped[str] = mapped_column(String(20), server_default="")
    plate_field: Mapped[str] = mapped_column(String(100), server_default="")
    uploaded_by: Mapped[str | None] = mapped_column(String(60))
    received_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


class Result(Base):
    """A tube's result, append-only: a later result is a new version; the latest counts.

    ``ct`` keeps the raw Ct values the call was made from; the kit settings are the
    upload's.
    """

    __tablename__ = "results"
    __table_args__ = (
        CheckConstraint(f"call IN {CALLS}", name="call"),
        UniqueConstraint("tube_serial", "version", name="uq_results_tube_version"),
        Index("ix_results_upload", "upload_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    tube_serial: Mapped[int] = mapped_column(ForeignKey("tubes.serial"))
    version: Mapped[int] = mapped_column(Integer)
    upload_id: Mapped[int] = mapped_column(ForeignKey("uploads.id"))
    plate: Mapped[str] = mapped_column(String(100))
    well: Mapped[str] = mapped_column(String(8))
    call: Mapped[str] = mapped_column(String(12))
    ct: Mapped[dict[str, Any]] = mapped_column(JSONB)
    controls_ok: Mapped[bool]
    resulted_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


class PlateRun(Base):
    """A plate as read in one upload, with the verdict on its control wells."""

    __tablename__ = "plate_runs"
    __table_args__ = (CheckConstraint("controls IN ('ok', 'failed')", name="controls"),)

    upload_id: Mapped[int] = mapped_column(ForeignKey("uploads.id"), primary_key=True)
    plate: Mapped[str] = mapped_column(String(100), primary_key=True)
    controls: Mapped[str] = mapped_column(String(8))
    wells: Mapped[int] = mapped_column(Integer)
