from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    UniqueConstraint,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column

from screening.db import Base

TUBE_STATES = "('open', 'sealed', 'packed', 'in_transit', 'received', 'resulted')"


class Tube(Base):
    """A tube, created at its first scan; ``serial`` is the barcode's number."""

    __tablename__ = "tubes"
    __table_args__ = (
        CheckConstraint(f"state IN {TUBE_STATES}", name="state"),
        CheckConstraint("kind IN ('pool', 'single')", name="kind"),
        CheckConstraint("count >= 0 AND count <= capacity", name="count"),
        CheckConstraint("capacity IN (1, 5, 10, 20)", name="capacity"),
        Index("ix_tubes_round_state", "round_id", "state"),
    )

    serial: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    barcode: Mapped[str] = mapped_column(String(14), unique=True)
    round_id: Mapped[int] = mapped_column(ForeignKey("rounds.id"))
    sampling_point_id: Mapped[int] = mapped_column(ForeignKey("sampling_points.id"), index=True)
    kind: Mapped[str] = mapped_column(String(8))
    capacity: Mapped[int] = mapped_column(SmallInteger)
    count: Mapped[int] = mapped_column(SmallInteger, default=0)
    state: Mapped[str] = mapped_column(String(16), default="open")
    opened_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    sealed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    box_id: Mapped[int | None] = mapped_column(ForeignKey("boxes.id"), index=True)
    received_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    lab_id: Mapped[int | None] = mapped_column(ForeignKey("labs.id"))
    # the latest result, derived from results (append-only) in the same transaction
    result_call: Mapped[str | None] = mapped_column(String(12))
    result_version: Mapped[int | None] = mapped_column(SmallInteger)
    resulted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Sample(Base):
    """One person's swab in one tube (``position`` is the tube's count after it)."""

    __tablename__ = "samples"
    __table_args__ = (
        UniqueConstraint("tube_serial", "resident_id", name="uq_samples_tube_resident"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    round_id: Mapped[int] = mapped_column(ForeignKey("rounds.id"))
    tube_serial: Mapped[int] = mapped_column(ForeignKey("tubes.serial"))
    resident_id: Mapped[int] = mapped_column(ForeignKey("residents.id"), index=True)
    kind: Mapped[str] = mapped_column(String(8))
    position: Mapped[int] = mapped_column(SmallInteger)
    sampled_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class AppliedEvent(Base):
    """An ``event_id`` already applied in a round: replays answer from here, change nothing."""

    __tablename__ = "applied_events"

    round_id: Mapped[int] = mapped_column(Integer, ForeignKey("rounds.id"), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    type: Mapped[str] = mapped_column(String(8))
    tube_serial: Mapped[int] = mapped_column(BigInteger)
    sample_id: Mapped[int | None] = mapped_column(BigInteger)
    applied_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
