"""Round planning math (screening.rounds.planning, pure): the guideline's rules and a
Shanghai-sized round (DOMAIN.md: 25.67M people in 2.43M tubes on 4 Apr 2022)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from screening.rounds.planning import (
    DistrictInput,
    LabInput,
    allocate,
    plan_round,
    samplers_needed,
    tubes_needed,
)

START = datetime(2022, 4, 4, 0, 0, tzinfo=UTC)
DAY = START + timedelta(hours=24)


def district(code, population, *, pool=10, points=10, stations=20, per_hour=60.0):
    return DistrictInput(code, population, points, stations, stations * per_hour, pool)


class TestRules:
    def test_tubes_round_up_per_pool(self):
        assert tubes_needed(25_670_000, 10) == 2_567_000
        assert tubes_needed(101, 10) == 11
        assert tubes_needed(101, 1) == 101
        with pytest.raises(ValueError):
            tubes_needed(100, 7)

    def test_samplers_are_population_over_360(self):
        assert samplers_needed(25_670_000) == 71_306
        assert samplers_needed(360) == 1
        assert samplers_needed(361) == 2

    @given(
        tubes=st.integers(0, 10_000_000),
        capacities=st.lists(st.integers(0, 500_000), min_size=1, max_size=8),
    )
    def test_allocation_covers_every_tube_in_proportion(self, tubes, capacities):
        shares = allocate(tubes, capacities)
        if sum(capacities) == 0:
            assert shares == [0] * len(capacities)
            return
        assert sum(shares) == tubes
        for share, capacity in zip(shares, capacities, strict=True):
            assert abs(share - tubes * capacity / sum(capacities)) < 1


class TestShanghai:
    """22.93M people at 10-in-1 and 2.74M at 20-in-1 make Shanghai's 2.43M tubes."""

    def districts(self, stations):
        return [
            district("PUDONG+", 22_930_000, stations=stations * 9 // 10),
            district("CHONGMING+", 2_740_000, pool=20, stations=stations // 10),
        ]

    def test_the_round_needs_its_tubes_and_samplers(self):
        plan = plan_round(self.districts(80_000), [LabInput("ALL", 2_500_000)], START, DAY)
        assert plan.population == 25_670_000
        assert plan.tubes_needed == 2_430_000
        assert plan.samplers_needed == 63_695 + 7_612
        assert plan.feasible
        assert plan.labs[0].allocated == 2_430_000

    def test_too_few_stations_is_the_bottleneck(self):
        # 50,000 stations at 60 swabs an hour: 8.5 h of sampling, over the 6 h window
        plan = plan_round(self.districts(50_000), [LabInput("ALL", 2_500_000)], START, DAY)
        first = plan.districts[0]
        assert first.hours_needed == pytest.approx(8.49, abs=0.01)
        assert (first.feasible, first.bottleneck) == (False, "stations")

    def test_too_little_lab_capacity_is_the_bottleneck(self):
        plan = plan_round(self.districts(80_000), [LabInput("ALL", 2_000_000)], START, DAY)
        assert {d.bottleneck for d in plan.districts} == {"labs"}
        assert not plan.feasible

    def test_a_short_round_makes_time_the_bottleneck(self):
        plan = plan_round(
            self.districts(80_000),
            [LabInput("ALL", 20_000_000)],
            START,
            START + timedelta(hours=4),
        )
        assert plan.districts[0].bottleneck == "time"

    def test_enough_stations_but_slow_ones_need_more_samplers(self):
        slow = [district("D", 100_000, stations=400, per_hour=20.0)]  # 12.5 h
        plan = plan_round(slow, [LabInput("L", 100_000)], START, DAY)
        assert plan.districts[0].bottleneck == "samplers"

    def test_lab_capacity_scales_with_the_round_length(self):
        plan = plan_round(
            self.districts(80_000),
            [LabInput("A", 200_000), LabInput("B", 100_000)],
            START,
            START + timedelta(hours=12),
        )
        assert [lab.capacity for lab in plan.labs] == [100_000, 50_000]
        assert [lab.allocated for lab in plan.labs] == [1_620_000, 810_000]

    def test_a_deadline_before_the_start_is_refused(self):
        with pytest.raises(ValueError):
            plan_round(self.districts(10), [], DAY, START)
