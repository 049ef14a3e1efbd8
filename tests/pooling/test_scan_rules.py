"""The scan rules of pooling.scan_rules: the first rule that applies is the answer,
in REFUSAL_ORDER, whatever else applies too."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from pooling.scan_rules import REFUSAL_ORDER, EarlierTube, Swab, in_time, swab_refusal
from pooling.tubes import TUBE_REFUSAL_ORDER, TubeKind, TubeSlots, TubeState

CLOSED = datetime(2026, 11, 23, 18, 0, tzinfo=UTC)
EARLIER = EarlierTube("00000000000024", "P2", CLOSED - timedelta(hours=3))


@st.composite
def situations(draw):
    kind = draw(st.sampled_from(list(TubeKind)))
    tube_kind = draw(st.sampled_from(list(TubeKind)))
    capacity = 10 if tube_kind is TubeKind.POOL else 1
    count = draw(st.integers(0, capacity))
    member = draw(st.booleans())
    slots = TubeSlots(
        "00000000000017",
        tube_kind,
        capacity,
        count,
        draw(st.sampled_from(list(TubeState))),
        {7} if member else set(),
    )
    swab = Swab(
        barcode="00000000000017",
        kind=kind,
        issued=draw(st.booleans()),
        own_point=draw(st.booleans()),
        at=CLOSED + timedelta(minutes=draw(st.integers(-60, 60))),
        closed_at=draw(st.sampled_from([None, CLOSED])),
        resident_id=draw(st.sampled_from([None, 7])),
        needs_single=draw(st.booleans()),
        earlier=draw(st.sampled_from([None, EARLIER])),
        alone=draw(st.booleans()),
    )
    return swab, draw(st.sampled_from([None, slots]))


def applicable(swab, slots):
    """Every rule that would refuse ``swab``, checked independently of each other."""
    found = set()
    if not swab.issued:
        found.add("bad-barcode")
    if not swab.own_point:
        found.add("forbidden")
    if not in_time(swab):
        found.add("round-closed")
    if swab.resident_id is None:
        found.add("unknown-resident")
        return found
    pooled = swab.kind is TubeKind.POOL and not swab.alone  # a pool of one reads as a single
    if pooled and swab.needs_single:
        found.add("needs-single")
    if pooled and swab.earlier is not None:
        found.add("already-sampled")
    if slots is not None:
        if swab.resident_id in slots.members:
            found.add("already-in-tube")
        if slots.kind is not swab.kind:
            found.add("tube-kind-mismatch")
        if slots.full:
            found.add("tube-full")
        if slots.state is not TubeState.OPEN:
            found.add("tube-sealed")
    return found


class TestRefusalOrder:
    @given(situations())
    def test_the_answer_is_the_first_rule_that_applies(self, situation):
        swab, slots = situation
        refused = swab_refusal(swab, slots)
        rules = applicable(swab, slots)
        if not rules:
            assert refused is None
        else:
            assert refused is not None
            assert refused.type == min(rules, key=REFUSAL_ORDER.index)

    def test_the_tube_rules_close_the_order(self):
        assert REFUSAL_ORDER[-len(TUBE_REFUSAL_ORDER) :] == TUBE_REFUSAL_ORDER
        assert REFUSAL_ORDER.index("needs-single") < REFUSAL_ORDER.index("already-sampled")


class TestRoundClose:
    def swab(self, minutes, kind=TubeKind.POOL, needs_single=False):
        return Swab(
            "x",
            kind,
            True,
            True,
            CLOSED + timedelta(minutes=minutes),
            CLOSED,
            7,
            needs_single,
            None,
        )

    def test_a_swab_taken_at_the_close_still_counts(self):
        assert in_time(self.swab(0)) and in_time(self.swab(-30))

    def test_a_swab_taken_after_the_close_does_not(self):
        assert not in_time(self.swab(1))
        assert not in_time(self.swab(1, TubeKind.SINGLE))

    def test_a_single_re_test_of_a_recalled_person_goes_on(self):
        assert in_time(self.swab(600, TubeKind.SINGLE, needs_single=True))

    def test_a_recalled_person_may_be_swabbed_into_a_pool_of_one(self):
        # isolation points run rounds of pool size 1: such a tube is read as a single
        swab = Swab("00000000000017", TubeKind.POOL, True, True, CLOSED, None, 7, True, EARLIER)
        assert swab_refusal(swab, None) is not None
        alone = Swab(
            "00000000000017", TubeKind.POOL, True, True, CLOSED, None, 7, True, EARLIER, alone=True
        )
        assert swab_refusal(alone, None) is None

    def test_already_sampled_names_the_earlier_tube_and_point(self):
        swab = Swab("00000000000017", TubeKind.POOL, True, True, CLOSED, None, 7, False, EARLIER)
        refused = swab_refusal(swab, None)
        assert refused is not None and refused.type == "already-sampled"
        assert EARLIER.barcode in refused.detail and "P2" in refused.detail
