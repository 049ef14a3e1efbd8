"""Pool-size advice (pooling.advice) against DOMAIN.md's published table."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pooling.advice import MIN_TESTED, advise, ct_shift, expected_tests, wilson_interval

# p, E(5), E(10), E(20): DOMAIN.md, Pool-size math
TABLE = [
    (0.0001, 0.200, 0.101, 0.052),
    (0.001, 0.205, 0.110, 0.070),
    (0.005, 0.225, 0.149, 0.145),
    (0.01, 0.249, 0.196, 0.232),
    (0.02, 0.296, 0.283, 0.382),
    (0.05, 0.426, 0.501, 0.692),
]


@pytest.mark.parametrize(("p", "e5", "e10", "e20"), TABLE)
def test_expected_tests_match_the_published_table(p, e5, e10, e20):
    assert round(expected_tests(5, p), 3) == e5
    assert round(expected_tests(10, p), 3) == e10
    assert round(expected_tests(20, p), 3) == e20
    assert expected_tests(1, p) == 1.0


def test_the_issue_figures():
    assert round(expected_tests(10, 0.001), 3) == 0.110
    assert round(expected_tests(20, 0.001), 3) == 0.070
    assert round(expected_tests(10, 0.02), 3) == 0.283
    assert round(expected_tests(20, 0.02), 3) == 0.382


def test_the_ct_shift_is_log2_n():
    assert ct_shift(1) == 0
    assert round(ct_shift(10), 1) == 3.3
    assert round(ct_shift(20), 1) == 4.3


def test_wilson_matches_a_known_value():
    # 5 of 1,000: 0.21% to 1.17% (Wilson, 95%)
    low, high = wilson_interval(5, 1000)
    assert (round(low, 4), round(high, 4)) == (0.0021, 0.0117)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    low, high = wilson_interval(0, 100_000)
    assert low == 0 and 0 < high < 0.0001


@given(st.integers(0, 10**6).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
def test_the_interval_holds_the_observed_proportion(case):
    positives, tested = case
    low, high = wilson_interval(positives, tested)
    assert 0 <= low <= high <= 1
    if tested:
        assert low <= positives / tested + 1e-12 and positives / tested - 1e-12 <= high


@pytest.mark.parametrize(
    ("positives", "tested", "current", "recommended"),
    [
        (0, 0, 10, 10),  # nothing observed: keep the round's size
        (0, 2_000_000, 10, 20),  # Beijing-like: low risk, 20-in-1
        (1, 1_000_000, 10, 20),
        (10, 1_000, 10, 10),  # 1%: not low risk, 10 beats 5
        (30, 1_000, 10, 5),  # ~3-4%: 5
        (300, 1_000, 10, 1),  # 30%: pooling no longer pays
        (0, 50, 10, 10),  # 50 people: too few to advise on, keep the round's size
        (0, 50, 5, 5),
    ],
)
def test_the_recommendation_follows_the_upper_bound_and_the_zone_rules(
    positives, tested, current, recommended
):
    advice = advise(positives, tested, current)
    assert advice.recommended == recommended, advice


@given(st.integers(0, 10**6).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
def test_the_recommendation_is_never_costlier_than_an_allowed_alternative(case):
    positives, tested = case
    advice = advise(positives, tested, 10)
    assert advice.recommended in (1, 5, 10, 20)
    if tested >= MIN_TESTED:
        allowed = [n for n in (1, 5, 10) if n in advice.expected_tests]
        assert advice.expected_tests[advice.recommended] <= min(
            advice.expected_tests[n] for n in allowed
        ) or math.isclose(
            advice.expected_tests[advice.recommended],
            min(advice.expected_tests[n] for n in allowed),
        )
