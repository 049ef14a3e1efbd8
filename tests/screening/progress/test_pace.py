"""The pace rule (screening/progress/pace.py), without a database."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from screening.progress.pace import LAGGING_SHARE, lag_order, point_pace, sampling_window


def pace(**overrides):
    args = {
        "people": 0,
        "district_population": 3000,
        "point_hourly": 120,
        "district_hourly": 240,
        "elapsed_hours": 3.0,
        "window_hours": 6.0,
        "boxes_late": 0,
    }
    return point_pace(**{**args, **overrides})


class TestPointPace:
    def test_a_point_expects_its_share_of_the_district_by_capacity(self):
        p = pace(people=600)
        assert (p.target, p.expected, p.pace, p.lagging) == (1500, 750, 0.8, False)

    def test_under_eighty_percent_of_the_pace_is_lagging(self):
        assert pace(people=599).lagging is True

    def test_a_late_box_makes_a_point_lagging_however_fast_it_swabs(self):
        assert pace(people=1500, boxes_late=1).lagging is True

    def test_before_the_round_starts_nothing_is_expected(self):
        p = pace(elapsed_hours=-1.0)
        assert (p.expected, p.pace, p.lagging) == (0, None, False)

    def test_a_district_without_capacity_expects_nothing(self):
        assert pace(district_hourly=0, point_hourly=0).target == 0

    def test_the_window_is_six_hours_or_the_round_if_shorter(self):
        assert (sampling_window(24), sampling_window(4)) == (6.0, 4)

    @given(
        people=st.integers(0, 10**6),
        population=st.integers(0, 10**7),
        point=st.integers(1, 10**4),
        others=st.integers(0, 10**5),
        elapsed=st.floats(-48, 48, allow_nan=False),
        window=st.floats(0.1, 12, allow_nan=False),
    )
    def test_expected_never_exceeds_the_target_and_lagging_means_behind(
        self, people, population, point, others, elapsed, window
    ):
        p = pace(
            people=people,
            district_population=population,
            point_hourly=point,
            district_hourly=point + others,
            elapsed_hours=elapsed,
            window_hours=window,
        )
        assert 0 <= p.expected <= p.target <= population
        assert p.lagging == (p.expected > 0 and people < LAGGING_SHARE * p.expected)

    def test_laggards_come_first_slowest_first(self):
        fast, slow, idle = pace(people=1400), pace(people=100), pace(people=0)
        ordered = sorted(
            [("A", fast), ("B", slow), ("C", idle)], key=lambda x: lag_order(x[1], x[0])
        )
        assert [code for code, _ in ordered] == ["C", "B", "A"]
