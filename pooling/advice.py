"""Pool-size advice (DOMAIN.md, Pool-size math), pure.

Two-stage (Dorfman) pooling with pool size n at prevalence p costs
E(n, p) = 1/n + 1 - (1-p)^n tests per person; E(1, p) = 1. Pooling dilutes: the Ct
shifts by about log2(n) cycles. The observed prevalence comes with a Wilson score
interval, and the advice is made on its **upper** bound, so a district with few
people tested is not pushed to large pools on thin evidence.

Zone rules (DOMAIN.md step 4): pools of 1, 5, 10 or 20; 20-in-1 only in low-risk
areas, which here means the upper bound of the prevalence is below
``LOW_RISK_UPPER`` (0.5%). With fewer than ``MIN_TESTED`` people tested the evidence
is too thin to change anything and the round's pool size stands (the figures are
still given).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

POOL_SIZES = (1, 5, 10, 20)
LOW_RISK_UPPER = 0.005
MIN_TESTED = 500
Z95 = 1.959963984540054


def expected_tests(n: int, p: float) -> float:
    """Dorfman's expected tests per person at pool size ``n`` and prevalence ``p``."""
    if n < 1:
        raise ValueError("a pool holds at least one person")
    if not 0 <= p <= 1:
        raise ValueError("prevalence is a proportion from 0 to 1")
    if n == 1:
        return 1.0
    return 1 / n + 1 - (1 - p) ** n


def ct_shift(n: int) -> float:
    """Cycles a positive's Ct moves later when pooled with n-1 negatives (log2 n)."""
    if n < 1:
        raise ValueError("a pool holds at least one person")
    return math.log2(n)


def wilson_interval(positives: int, tested: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a proportion; (0, 1) when nobody was tested."""
    if tested < 0 or not 0 <= positives <= tested:
        raise ValueError("need 0 <= positives <= tested")
    if tested == 0:
        return (0.0, 1.0)
    phat = positives / tested
    z2 = z * z
    centre = (phat + z2 / (2 * tested)) / (1 + z2 / tested)
    half = (z / (1 + z2 / tested)) * math.sqrt(
        phat * (1 - phat) / tested + z2 / (4 * tested * tested)
    )
    return (max(0.0, centre - half), min(1.0, centre + half))


@dataclass(frozen=True, slots=True)
class Advice:
    prevalence: float | None
    interval: tuple[float, float]
    expected_tests: dict[int, float]  # at the upper bound of the interval
    ct_shift: dict[int, float]
    recommended: int
    reason: str


def advise(positives: int, tested: int, current: int) -> Advice:
    """Recommend a pool size for the next round from this round's observations."""
    low, high = wilson_interval(positives, tested)
    shifts = {n: round(ct_shift(n), 2) for n in POOL_SIZES}
    if tested == 0:
        return Advice(
            None, (low, high), {}, shifts, current, "no one tested yet: keep the round's pool size"
        )
    costs = {n: expected_tests(n, high) for n in POOL_SIZES}
    if tested < MIN_TESTED:
        return Advice(
            positives / tested,
            (low, high),
            {n: round(c, 4) for n, c in costs.items()},
            shifts,
            current,
            f"fewer than {MIN_TESTED} people tested: keep the round's pool size",
        )
    allowed = [n for n in POOL_SIZES if n != 20 or high < LOW_RISK_UPPER]
    best = min(allowed, key=lambda n: (costs[n], -n))
    if best == 1:
        reason = "prevalence so high that pooling costs more tests than it saves"
    elif high < LOW_RISK_UPPER:
        reason = "low-risk area: the fewest tests per person"
    else:
        reason = "the fewest tests per person; 20-in-1 only in low-risk areas"
    return Advice(
        positives / tested,
        (low, high),
        {n: round(c, 4) for n, c in costs.items()},
        shifts,
        best,
        reason,
    )
