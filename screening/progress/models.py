"""Round progress kept as counters, so the command center's figures cost the same at
25 million samples as at 25 (issue 5). Triggers on ``tubes`` and ``samples``
(migration 0004) keep them in the very statements that change states, so they can
never drift from the rows they count."""

from __future__ import annotations

from sqlalchemy import BigInteger, Integer
from sqlalchemy.orm import Mapped, mapped_column

from screening.db import Base


class ProgressCount(Base):
    """Per round, sampling point and lab (0: not at a lab yet): samples taken
    (``registered``, re-tests included), people sampled for the first time this round
    at this point (``people``, migration 0006), tubes by state, tubes by latest call,
    pooled tubes by positive call, and single tubes with a positive call."""

    __tablename__ = "progress_counts"

    round_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sampling_point_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    lab_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    registered: Mapped[int] = mapped_column(BigInteger, server_default="0")
    open: Mapped[int] = mapped_column(BigInteger, server_default="0")
    sealed: Mapped[int] = mapped_column(BigInteger, server_default="0")
    packed: Mapped[int] = mapped_column(BigInteger, server_default="0")
    in_transit: Mapped[int] = mapped_column(BigInteger, server_default="0")
    received: Mapped[int] = mapped_column(BigInteger, server_default="0")
    resulted: Mapped[int] = mapped_column(BigInteger, server_default="0")
    negative: Mapped[int] = mapped_column(BigInteger, server_default="0")
    positive: Mapped[int] = mapped_column(BigInteger, server_default="0")
    suspicious: Mapped[int] = mapped_column(BigInteger, server_default="0")
    invalid: Mapped[int] = mapped_column(BigInteger, server_default="0")
    single_positive: Mapped[int] = mapped_column(BigInteger, server_default="0")
    people: Mapped[int] = mapped_column(BigInteger, server_default="0")
    pool_positive: Mapped[int] = mapped_column(BigInteger, server_default="0")
    pool_suspicious: Mapped[int] = mapped_column(BigInteger, server_default="0")


class TurnaroundCount(Base):
    """Tubes resulted per round, lab and 5-minute bucket of sealed-to-result time."""

    __tablename__ = "turnaround_counts"

    round_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    lab_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    bucket: Mapped[int] = mapped_column(Integer, primary_key=True)
    n: Mapped[int] = mapped_column(BigInteger, server_default="0")


class LabTurnaroundCount(Base):
    """Tubes resulted per round, lab and 5-minute bucket of received-to-result time:
    the lab's own speed, without the road."""

    __tablename__ = "lab_turnaround_counts"

    round_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    lab_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    bucket: Mapped[int] = mapped_column(Integer, primary_key=True)
    n: Mapped[int] = mapped_column(BigInteger, server_default="0")


class RoundPerson(Base):
    """A person's first sample of a round (one row per round and person): what makes
    the people counter exact, and the cheap answer to "sampled in this round yet?"."""

    __tablename__ = "round_people"

    round_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    resident_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    sample_id: Mapped[int] = mapped_column(BigInteger)
