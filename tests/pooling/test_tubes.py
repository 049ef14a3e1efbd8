"""The pure tube rules of pooling.tubes and pooling.standing."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pooling.standing import SampleOutcome, resident_status
from pooling.tubes import (
    SampleRefused,
    TubeKind,
    TubeSlots,
    TubeState,
    can_move,
    capacity_for,
)


def tube(capacity=10, kind=TubeKind.POOL):
    return TubeSlots("00000000000017", kind, capacity, 0, TubeState.OPEN, set())


class TestCapacity:
    @pytest.mark.parametrize("pool_size", [1, 5, 10, 20])
    def test_a_pool_takes_the_pool_size_and_a_single_takes_one(self, pool_size):
        assert capacity_for(TubeKind.POOL, pool_size) == pool_size
        assert capacity_for(TubeKind.SINGLE, pool_size) == 1

    def test_a_pool_size_outside_the_rules_is_refused(self):
        with pytest.raises(ValueError):
            capacity_for(TubeKind.POOL, 7)

    @given(st.sampled_from([1, 5, 10, 20]), st.lists(st.integers(1, 40), max_size=60))
    def test_a_tube_never_holds_more_than_its_capacity_nor_anyone_twice(self, size, people):
        t = tube(size)
        taken = []
        for person in people:
            try:
                t.add(person, TubeKind.POOL)
                taken.append(person)
            except SampleRefused as exc:
                assert exc.type in ("tube-full", "already-in-tube", "tube-sealed")
        assert len(taken) == len(set(taken)) == t.count <= size
        assert (t.state is TubeState.SEALED) == (t.count == size)


class TestSealing:
    def test_a_full_tube_seals_itself(self):
        t = tube(5)
        for person in range(5):
            t.add(person, TubeKind.POOL)
        assert t.state is TubeState.SEALED

    def test_an_empty_tube_cannot_be_sealed(self):
        with pytest.raises(SampleRefused) as exc:
            tube().seal()
        assert exc.value.type == "tube-empty"

    def test_a_sealed_tube_takes_no_more(self):
        t = tube()
        t.add(1, TubeKind.POOL)
        t.seal()
        with pytest.raises(SampleRefused) as exc:
            t.add(2, TubeKind.POOL)
        assert exc.value.type == "tube-sealed"


class TestLifecycle:
    def test_the_lifecycle_runs_forward_only(self):
        path = [
            TubeState.OPEN,
            TubeState.SEALED,
            TubeState.PACKED,
            TubeState.IN_TRANSIT,
            TubeState.RECEIVED,
            TubeState.RESULTED,
        ]
        for current, following in itertools.pairwise(path):
            assert can_move(current, following)
            assert not can_move(following, current)

    def test_a_failed_plate_waits_and_its_re_run_decides(self):
        assert can_move(TubeState.RECEIVED, TubeState.RERUN)
        assert can_move(TubeState.RERUN, TubeState.RESULTED)
        assert can_move(TubeState.RERUN, TubeState.RECEIVED)  # left out of the re-run
        assert not can_move(TubeState.RESULTED, TubeState.RERUN)  # a result stands

    def test_a_rejected_tube_goes_nowhere(self):
        for state in (TubeState.PACKED, TubeState.IN_TRANSIT, TubeState.RECEIVED):
            assert can_move(state, TubeState.REJECTED)
        assert not any(can_move(TubeState.REJECTED, state) for state in TubeState)
        assert not can_move(TubeState.RESULTED, TubeState.REJECTED)


class TestStanding:
    @pytest.mark.parametrize(
        ("samples", "status"),
        [
            ([], "pending"),
            ([("pool", None)], "pending"),
            ([("pool", "negative")], "negative"),
            ([("pool", "positive")], "retest"),
            ([("pool", "suspicious")], "retest"),
            ([("pool", "invalid")], "invalid"),
            ([("pool", "positive"), ("single", None)], "retest"),
            ([("pool", "positive"), ("single", "negative")], "negative"),
            ([("pool", "positive"), ("single", "positive")], "positive"),
            ([("pool", "positive"), ("single", "invalid")], "invalid"),
            ([("pool", "positive"), ("single", "invalid"), ("single", "negative")], "negative"),
            ([("single", "positive")], "positive"),
        ],
    )
    def test_a_residents_status_reads_from_all_their_samples(self, samples, status):
        assert resident_status(SampleOutcome(k, c) for k, c in samples) == status
