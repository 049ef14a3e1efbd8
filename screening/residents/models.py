from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    LargeBinary,
    String,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column

from screening.db import Base


class Resident(Base):
    """A registered person. ID number, name, phone and address are stored encrypted
    (AES-GCM); ``id_hash`` is a keyed HMAC of the ID (for a passport: nationality and
    number) for look-up, so a dump reveals none of them."""

    __tablename__ = "residents"
    __table_args__ = (
        CheckConstraint(
            "id_type IN ('prc_id', 'hkmo_permit', 'tw_permit', 'foreign_permanent',"
            " 'passport', 'other')",
            name="id_type",
        ),
        Index("ix_residents_district_community", "district_id", "community", "id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    code: Mapped[str] = mapped_column(String(16), unique=True)
    id_type: Mapped[str] = mapped_column(String(20))
    id_hash: Mapped[bytes] = mapped_column(LargeBinary, unique=True)
    passport_number_hash: Mapped[bytes | None] = mapped_column(LargeBinary)
    """A passport's number alone, hashed (migration 0012): the query without a nationality."""
    id_enc: Mapped[bytes] = mapped_column(LargeBinary)
    name_enc: Mapped[bytes] = mapped_column(LargeBinary)
    phone_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    nationality: Mapped[str | None] = mapped_column(String(3))
    community: Mapped[str | None] = mapped_column(String(64))
    address_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    district_id: Mapped[int] = mapped_column(ForeignKey("districts.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
