from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, DateTime, ForeignKey, LargeBinary, String, func
from sqlalchemy.orm import Mapped, mapped_column

from screening.db import Base


class Resident(Base):
    """A registered person. ID number, name and phone are stored encrypted (AES-GCM);
    ``id_hash`` is a keyed HMAC of the ID for look-up, so a dump reveals none of them."""

    __tablename__ = "residents"
    __table_args__ = (
        CheckConstraint("id_type IN ('prc_id', 'passport', 'other')", name="id_type"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    code: Mapped[str] = mapped_column(String(16), unique=True)
    id_type: Mapped[str] = mapped_column(String(16))
    id_hash: Mapped[bytes] = mapped_column(LargeBinary, unique=True)
    id_enc: Mapped[bytes] = mapped_column(LargeBinary)
    name_enc: Mapped[bytes] = mapped_column(LargeBinary)
    phone_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    district_id: Mapped[int] = mapped_column(ForeignKey("districts.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
