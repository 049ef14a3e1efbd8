"""pytest-benchmark of the pure rules on the hot paths.

    .venv/bin/pytest bench/test_pure.py --benchmark-only

Baseline in the same run: ``int()`` of the same 14-digit strings, the cheapest
possible reading of a barcode.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pooling.barcodes import format_barcode, parse_barcode
from pooling.tubes import TubeKind, TubeSlots, TubeState
from screening.privacy import normalize_id_number
from screening.rounds.planning import DistrictInput, LabInput, plan_round

CODES = [format_barcode(s) for s in range(1, 10_001)]


def test_baseline_int_of_10000_codes(benchmark):
    benchmark(lambda: [int(c) for c in CODES])


def test_parse_10000_barcodes(benchmark):
    benchmark(lambda: [parse_barcode(c) for c in CODES])


def test_fill_1000_tubes_of_ten(benchmark):
    def fill() -> None:
        for t in range(1000):
            tube = TubeSlots(CODES[t], TubeKind.POOL, 10, 0, TubeState.OPEN, set())
            for person in range(10):
                tube.add(t * 10 + person, TubeKind.POOL)

    benchmark(fill)


def test_validate_1000_prc_ids(benchmark):
    from stdnum.cn import ric

    ids = []
    for n in range(1000):
        body = f"11010519800101{n:03d}"
        ids.append(body + ric.calc_check_digit(body + "0"))
    benchmark(lambda: [normalize_id_number("prc_id", i) for i in ids])


def test_plan_a_megacity_round(benchmark):
    districts = [DistrictInput(f"D{i}", 1_600_000, 600, 1500, 1500 * 60.0, 10) for i in range(16)]
    labs = [LabInput(f"L{i}", 200_000) for i in range(15)]
    start = datetime(2022, 4, 4, tzinfo=UTC)
    benchmark(lambda: plan_round(districts, labs, start, start + timedelta(hours=24)))
