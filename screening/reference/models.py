from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Integer, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from screening.db import Base


class District(Base):
    __tablename__ = "districts"
    __table_args__ = (CheckConstraint("population >= 0", name="population"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    population: Mapped[int] = mapped_column(Integer)


class SamplingPoint(Base):
    """Where residents are swabbed; a tube is bound to this place, not to home addresses."""

    __tablename__ = "sampling_points"
    __table_args__ = (
        CheckConstraint("stations >= 1", name="stations"),
        CheckConstraint("people_per_hour_per_station >= 1", name="people_per_hour"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    address: Mapped[str] = mapped_column(String(400), default="")
    district_id: Mapped[int] = mapped_column(ForeignKey("districts.id"), index=True)
    stations: Mapped[int] = mapped_column(Integer)
    people_per_hour_per_station: Mapped[int] = mapped_column(Integer)


class Lab(Base):
    __tablename__ = "labs"
    __table_args__ = (CheckConstraint("daily_capacity_tubes >= 0", name="capacity"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    daily_capacity_tubes: Mapped[int] = mapped_column(Integer)
    kit: Mapped[dict[str, Any]] = mapped_column(JSONB)
