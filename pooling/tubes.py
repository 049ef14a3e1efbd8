"""The tube lifecycle and the pool rules, as pure functions.

A tube is ``open`` while swabs go in, ``sealed`` when full (it seals itself) or by
hand, ``packed`` into one transport box, ``in_transit`` once the box is dispatched,
``received`` when the lab scans it in, and ``resulted`` once a result is stored. On
a plate whose controls failed it is ``rerun`` until the plate's re-run decides (a
result, or back to ``received`` when the re-run left it out); unusable at receipt
(leaking, insufficient, ...) it is ``rejected`` for good.
Pools are never nested: a tube holds residents' swabs only, never other tubes.
Capacity is the round's pool size (per district) for a pooled tube and 1 for a single
tube; a person goes into a tube at most once.

The database enforces the same states with a CHECK constraint and conditional
updates; this module is the one place that says which moves are allowed, and
:meth:`TubeSlots.refusal` the one place that says why a swab cannot go into a tube.
The online scan's conditional ``UPDATE`` and the offline replay both answer with it;
``tests/screening/sampling/test_rules.py`` drives both paths through every tube state
and checks them against this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class TubeState(StrEnum):
    OPEN = "open"
    SEALED = "sealed"
    PACKED = "packed"
    IN_TRANSIT = "in_transit"
    RECEIVED = "received"
    RESULTED = "resulted"
    RERUN = "rerun"
    REJECTED = "rejected"


class TubeKind(StrEnum):
    POOL = "pool"
    SINGLE = "single"


POOL_SIZES = (1, 5, 10, 20)

TRANSITIONS: dict[TubeState, frozenset[TubeState]] = {
    TubeState.OPEN: frozenset({TubeState.SEALED}),
    TubeState.SEALED: frozenset({TubeState.PACKED}),
    # a box received before anyone pressed "dispatch" is still received
    TubeState.PACKED: frozenset({TubeState.IN_TRANSIT, TubeState.RECEIVED, TubeState.REJECTED}),
    TubeState.IN_TRANSIT: frozenset({TubeState.RECEIVED, TubeState.REJECTED}),
    TubeState.RECEIVED: frozenset({TubeState.RESULTED, TubeState.RERUN, TubeState.REJECTED}),
    TubeState.RERUN: frozenset({TubeState.RESULTED, TubeState.RECEIVED, TubeState.RERUN}),
    TubeState.RESULTED: frozenset({TubeState.RESULTED}),
    TubeState.REJECTED: frozenset(),
}


def can_move(current: TubeState, target: TubeState) -> bool:
    return target in TRANSITIONS[current]


def pool_of_one(kind: TubeKind, capacity: int) -> bool:
    """A pooled tube that takes one swab (``pool_size`` 1, isolation points): it is read
    as a single tube, at the scan as in a person's standing."""
    return kind is TubeKind.POOL and capacity == 1


def capacity_for(kind: TubeKind, pool_size: int) -> int:
    """A pooled tube takes ``pool_size`` swabs; a single tube takes one."""
    if pool_size not in POOL_SIZES:
        raise ValueError(f"pool size must be one of {POOL_SIZES}")
    return 1 if kind is TubeKind.SINGLE else pool_size


# The order a swab's tube-level refusals are checked in (the first that applies is
# the answer): a second scan of someone already in the tube says so even when the
# tube is full by now; the scan rules before these are in :mod:`pooling.scan_rules`.
TUBE_REFUSAL_ORDER = ("already-in-tube", "tube-kind-mismatch", "tube-full", "tube-sealed")


class SampleRefused(Exception):
    """Why a swab cannot go into a tube; ``type`` is the API's problem slug."""

    def __init__(self, type_: str, detail: str) -> None:
        super().__init__(detail)
        self.type = type_
        self.detail = detail


@dataclass(slots=True)
class TubeSlots:
    """What a sampling decision needs to know of one tube."""

    barcode: str
    kind: TubeKind
    capacity: int
    count: int
    state: TubeState
    members: set[int]

    @property
    def full(self) -> bool:
        return self.count >= self.capacity

    def refusal(self, resident_id: int, kind: TubeKind) -> SampleRefused | None:
        """Why this person's swab cannot go in, in the one order both the online scan
        and the offline replay answer with (see :data:`TUBE_REFUSAL_ORDER`); None when it can."""
        if resident_id in self.members:
            return SampleRefused(
                "already-in-tube", f"this person is already in tube {self.barcode}"
            )
        if kind is not self.kind:
            return SampleRefused(
                "tube-kind-mismatch", f"tube {self.barcode} is a {self.kind.value} tube"
            )
        if self.full:
            return SampleRefused(
                "tube-full", f"tube {self.barcode} already holds {self.count} of {self.capacity}"
            )
        if self.state is not TubeState.OPEN:
            return SampleRefused("tube-sealed", f"tube {self.barcode} is {self.state.value}")
        return None

    def add(self, resident_id: int, kind: TubeKind) -> int:
        """Put one person's swab in; return the new count. Seals the tube when full."""
        refused = self.refusal(resident_id, kind)
        if refused is not None:
            raise refused
        self.members.add(resident_id)
        self.count += 1
        if self.full:
            self.move(TubeState.SEALED)
        return self.count

    def move(self, target: TubeState) -> None:
        if not can_move(self.state, target):
            raise SampleRefused("tube-sealed", f"tube {self.barcode} is {self.state.value}")
        self.state = target

    def seal(self) -> None:
        """Seal by hand. Sealing a sealed tube again is a no-op; an empty tube cannot."""
        if self.state is TubeState.SEALED:
            return
        if self.state is not TubeState.OPEN:
            raise SampleRefused("tube-sealed", f"tube {self.barcode} is {self.state.value}")
        if self.count == 0:
            raise SampleRefused("tube-empty", f"tube {self.barcode} holds no sample")
        self.move(TubeState.SEALED)
