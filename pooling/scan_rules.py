"""The scan rules: whether one person's swab may go into one tube, and if not, why.

One definition for both ways a swab arrives: the online scan
(``POST /rounds/{id}/samples``) and the offline replay (``POST /rounds/{id}/sync``).
Both gather the same facts (:class:`Swab`) and ask :func:`swab_refusal`; the first
rule that applies is the answer, in this order (:data:`REFUSAL_ORDER`):

1. ``bad-barcode``: the tube's code is misread (length, digits, check digit), or it was
   not issued for this round;
2. ``bad-resident-code``: the person's code is misread (its check character is wrong);
3. ``forbidden``: the tube was issued to another sampling point than the sampler's;
4. ``round-closed``: the swab was taken after the round closed. A swab taken at or
   before ``closed_at`` still counts (a phone that was offline sends it later), and a
   single re-test of someone with an open de-pool case goes on after the close;
5. ``unknown-resident``: no one holds this code;
6. ``needs-single``: the person has an open de-pool case (to be recalled) and must be
   swabbed alone, not into a pool tube;
7. ``already-sampled``: the person is already in another pool tube of this round whose
   result is not ``invalid`` (checked for pool tubes only: a single re-test is how a
   pooled person is swabbed again);
8. the tube's own rules, :data:`pooling.tubes.TUBE_REFUSAL_ORDER`: ``already-in-tube``,
   ``tube-kind-mismatch``, ``tube-full``, ``tube-sealed``.

``needs-single`` comes before ``already-sampled`` because it tells the clerk what to do.
Rules 1 and 2's misreads are checked before any database work; the rest need facts
from the database, which each path fetches in as few round trips as it can.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pooling.tubes import TUBE_REFUSAL_ORDER, SampleRefused, TubeKind, TubeSlots

REFUSAL_ORDER = (
    "bad-barcode",
    "bad-resident-code",
    "forbidden",
    "round-closed",
    "unknown-resident",
    "needs-single",
    "already-sampled",
    *TUBE_REFUSAL_ORDER,
)


@dataclass(frozen=True, slots=True)
class EarlierTube:
    """The live pool tube of this round a person is already in."""

    barcode: str
    sampling_point: str
    sampled_at: datetime


class AlreadySampledRefusal(SampleRefused):
    def __init__(self, earlier: EarlierTube) -> None:
        super().__init__(
            "already-sampled",
            f"this person is already in pool tube {earlier.barcode} of sampling point"
            f" {earlier.sampling_point}, sampled at {earlier.sampled_at.isoformat()}",
        )
        self.earlier = earlier


@dataclass(frozen=True, slots=True)
class Swab:
    """What is known about one swab before it goes in."""

    barcode: str
    kind: TubeKind
    issued: bool
    """The barcode is in a range issued for this round (or its tube is of this round)."""
    own_point: bool
    """The caller may use this tube (its point is the sampler's, or the caller is admin)."""
    at: datetime
    closed_at: datetime | None
    resident_id: int | None
    needs_single: bool
    earlier: EarlierTube | None
    alone: bool = False
    """A pooled tube of capacity one (``pool_size`` 1, isolation points): read as a
    single, so a recalled person may be swabbed into it and it is no second pool."""


def in_time(swab: Swab) -> bool:
    """Rule 4: taken while the round was open, or a single re-test of a recalled person."""
    if swab.closed_at is None or swab.at <= swab.closed_at:
        return True
    return (swab.kind is TubeKind.SINGLE or swab.alone) and swab.needs_single


def swab_refusal(swab: Swab, tube: TubeSlots | None) -> SampleRefused | None:
    """The first rule (3 to 8 above) that refuses ``swab``, or None; ``tube`` is None
    for a tube nobody has scanned yet (it would be opened by this swab)."""
    if not swab.issued:
        return SampleRefused("bad-barcode", f"tube {swab.barcode} was not issued for this round")
    if not swab.own_point:
        return SampleRefused("forbidden", f"tube {swab.barcode} belongs to another sampling point")
    if not in_time(swab):
        return SampleRefused("round-closed", "the round closed before this swab was taken")
    if swab.resident_id is None:
        return SampleRefused("unknown-resident", "no resident with this code; register them first")
    if swab.kind is TubeKind.POOL and not swab.alone:
        if swab.needs_single:
            return SampleRefused(
                "needs-single",
                "this person has an open de-pool case: swab them alone in a single tube",
            )
        if swab.earlier is not None and swab.earlier.barcode != swab.barcode:
            return AlreadySampledRefusal(swab.earlier)
    if tube is None:
        return None
    return tube.refusal(swab.resident_id, swab.kind)
