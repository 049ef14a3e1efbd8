from datetime import datetime

from sqlalchemy import CheckConstraint, DateTime, ForeignKey, Integer, String, func
from sqlalchemy.orm import Mapped, mapped_column

from screening.db import Base


class ApiToken(Base):
    """A bearer token, stored as its SHA-256 only: the token itself is shown once."""

    __tablename__ = "api_tokens"
    __table_args__ = (
        CheckConstraint("role IN ('admin', 'sampler', 'lab')", name="role"),
        CheckConstraint(
            "(role = 'sampler') = (sampling_point_id IS NOT NULL)"
            " AND (role = 'lab') = (lab_id IS NOT NULL)",
            name="scope",
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    sampling_point_id: Mapped[int | None] = mapped_column(ForeignKey("sampling_points.id"))
    lab_id: Mapped[int | None] = mapped_column(ForeignKey("labs.id"))
    label: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
