"""Whether a sampling point keeps pace with the round (pure).

A point's share of its district is its share of the district's swabbing capacity
(stations x people per hour per station): a district's people are expected to spread
over its points as the points can take them. The round plans to swab everyone inside
the sampling window (6 h, or the round if shorter: rounds/planning.py), evenly, so by
``elapsed`` hours a point should have swabbed ``target x elapsed / window`` people.

A point is lagging when it has swabbed fewer than ``LAGGING_SHARE`` of what it should
have by now, or when a box it dispatched is late on the road: either way the command
center should call it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from screening.rounds.planning import SAMPLING_WINDOW_HOURS

LAGGING_SHARE = 0.8


@dataclass(frozen=True, slots=True)
class Pace:
    target: int
    """People this point is expected to swab in the round."""
    expected: int
    """People it should have swabbed by now."""
    pace: float | None
    """People swabbed / expected (None before anyone is expected)."""
    lagging: bool


def sampling_window(round_hours: float) -> float:
    return max(min(SAMPLING_WINDOW_HOURS, round_hours), 1 / 60)


def point_pace(
    *,
    people: int,
    district_population: int,
    point_hourly: int,
    district_hourly: int,
    elapsed_hours: float,
    window_hours: float,
    boxes_late: int = 0,
) -> Pace:
    target = (
        round(district_population * point_hourly / district_hourly) if district_hourly > 0 else 0
    )
    share = min(1.0, max(0.0, elapsed_hours / window_hours)) if window_hours > 0 else 1.0
    expected = math.floor(target * share)
    pace = round(people / expected, 4) if expected > 0 else None
    behind = expected > 0 and people < LAGGING_SHARE * expected
    return Pace(target=target, expected=expected, pace=pace, lagging=behind or boxes_late > 0)


def lag_order(pace: Pace, code: str) -> tuple[int, float, str]:
    """Lagging points first, the furthest behind first; then the rest, slowest first."""
    return (0 if pace.lagging else 1, pace.pace if pace.pace is not None else math.inf, code)
