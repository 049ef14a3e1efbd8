from datetime import datetime

from sqlalchemy import CheckConstraint, DateTime, ForeignKey, Index, Integer, String, func, text
from sqlalchemy.orm import Mapped, mapped_column

from screening.db import Base


class Box(Base):
    """A transport box (~50 sealed tubes) from one sampling point to one lab.

    Boxes are reused: a barcode is unique among boxes not yet received, and a look-up
    by barcode takes the newest box carrying it.
    """

    __tablename__ = "boxes"
    __table_args__ = (
        CheckConstraint("state IN ('packed', 'in_transit', 'received')", name="state"),
        Index(
            "uq_boxes_barcode_active",
            "barcode",
            unique=True,
            postgresql_where=text("state <> 'received'"),
        ),
        Index("ix_boxes_barcode", "barcode", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    barcode: Mapped[str] = mapped_column(String(40))
    sampling_point_id: Mapped[int] = mapped_column(ForeignKey("sampling_points.id"))
    lab_id: Mapped[int] = mapped_column(ForeignKey("labs.id"))
    state: Mapped[str] = mapped_column(String(16), server_default="packed")
    packed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    dispatched_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    received_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
