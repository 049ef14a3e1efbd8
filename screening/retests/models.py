"""De-pool cases (DOMAIN.md step 8): a positive or suspicious pool's members, recalled
and re-tested one by one; every change kept as an event, which is also the live feed."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from screening.db import Base

MEMBER_STATES = "('to-recall', 'resampled', 'negative', 'positive', 'invalid')"
EVENT_KINDS = (
    "('case-opened', 'member-resampled', 'member-resulted', 'case-resolved', 'case-overdue',"
    " 'member-overdue')"
)


class RetestCase(Base):
    """One per pooled tube that came back positive or suspicious (never two)."""

    __tablename__ = "retest_cases"
    __table_args__ = (
        CheckConstraint("pool_result IN ('positive', 'suspicious')", name="pool_result"),
        CheckConstraint("status IN ('open', 'resolved')", name="status"),
        Index("ix_retest_cases_round_status", "round_id", "status"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    round_id: Mapped[int] = mapped_column(ForeignKey("rounds.id"))
    pool_tube_serial: Mapped[int] = mapped_column(ForeignKey("tubes.serial"), unique=True)
    sampling_point_id: Mapped[int] = mapped_column(ForeignKey("sampling_points.id"), index=True)
    lab_id: Mapped[int | None] = mapped_column(ForeignKey("labs.id"))
    pool_result: Mapped[str] = mapped_column(String(12))
    status: Mapped[str] = mapped_column(String(10), server_default="open")
    discordant: Mapped[bool | None]
    opened_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    overdue_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class RetestMember(Base):
    """A person in a de-pool case and where their single re-test stands."""

    __tablename__ = "retest_members"
    __table_args__ = (CheckConstraint(f"status IN {MEMBER_STATES}", name="status"),)

    case_id: Mapped[int] = mapped_column(ForeignKey("retest_cases.id"), primary_key=True)
    resident_id: Mapped[int] = mapped_column(
        ForeignKey("residents.id"), primary_key=True, index=True
    )
    status: Mapped[str] = mapped_column(String(12), server_default="to-recall")
    single_tube_serial: Mapped[int | None] = mapped_column(ForeignKey("tubes.serial"), index=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    overdue_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class RetestEvent(Base):
    """Every state change of a case and its members: who, when, from what. Read in
    ``id`` order it is the live feed (``GET /events``)."""

    __tablename__ = "retest_events"
    __table_args__ = (CheckConstraint(f"kind IN {EVENT_KINDS}", name="kind"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    round_id: Mapped[int] = mapped_column(Integer)
    case_id: Mapped[int] = mapped_column(ForeignKey("retest_cases.id"), index=True)
    sampling_point_id: Mapped[int] = mapped_column(Integer)
    resident_id: Mapped[int | None] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(20))
    from_status: Mapped[str | None] = mapped_column(String(12))
    to_status: Mapped[str | None] = mapped_column(String(12))
    actor: Mapped[str] = mapped_column(String(60))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class AuditEntry(Base):
    """Who looked at personal data in full, and when (no personal data itself)."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    role: Mapped[str] = mapped_column(String(10))
    token_id: Mapped[int | None] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(String(40))
    subject: Mapped[str] = mapped_column(String(100))
    detail: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default="{}")
