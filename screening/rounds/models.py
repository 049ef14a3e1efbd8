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
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ExcludeConstraint
from sqlalchemy.orm import Mapped, mapped_column

from screening.db import Base

POOL_SIZES = "(1, 5, 10, 20)"


class Round(Base):
    __tablename__ = "rounds"
    __table_args__ = (
        CheckConstraint(f"pool_size IN {POOL_SIZES}", name="pool_size"),
        CheckConstraint("status IN ('open', 'closed')", name="status"),
        CheckConstraint("deadline > starts_at", name="deadline"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    pool_size: Mapped[int] = mapped_column(SmallInteger)
    status: Mapped[str] = mapped_column(String(16), server_default="open")
    starts_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    deadline: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class RoundDistrict(Base):
    """A district covered by a round, with the pool size used there (zone rules)."""

    __tablename__ = "round_districts"
    __table_args__ = (CheckConstraint(f"pool_size IN {POOL_SIZES}", name="pool_size"),)

    round_id: Mapped[int] = mapped_column(ForeignKey("rounds.id"), primary_key=True)
    district_id: Mapped[int] = mapped_column(ForeignKey("districts.id"), primary_key=True)
    pool_size: Mapped[int] = mapped_column(SmallInteger)


class BarcodeRange(Base):
    """Consecutive tube serials issued to one sampling point for one round.

    Ranges never overlap across rounds (exclusion constraint), so a serial names
    exactly one round and point.
    """

    __tablename__ = "barcode_ranges"
    __table_args__ = (
        CheckConstraint("last_serial >= first_serial", name="order"),
        ExcludeConstraint(
            (text("int8range(first_serial, last_serial, '[]')"), "&&"),
            name="barcode_ranges_no_overlap",
            using="gist",
        ),
        Index("ix_barcode_ranges_round_first", "round_id", "first_serial"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    round_id: Mapped[int] = mapped_column(ForeignKey("rounds.id"))
    sampling_point_id: Mapped[int] = mapped_column(ForeignKey("sampling_points.id"))
    first_serial: Mapped[int] = mapped_column(BigInteger)
    last_serial: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
