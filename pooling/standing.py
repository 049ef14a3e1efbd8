"""A resident's standing in one round, from all their samples in it (API.md, Residents).

- A single tube's result reads as itself; the newest single tube with a result wins,
  because a single re-test is the answer to a pooled one.
- Otherwise the pool's result: negative reads ``negative``; positive or suspicious
  reads ``retest`` (single-target amplification is handled like a positive, so the
  person must be swabbed alone); invalid reads ``invalid`` (sample again).
- No result yet: ``pending``.
- A pooled sample whose de-pool case has this person's single re-test answered (in
  this round or a later one) reads as that answer: ``retest`` ends with it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SampleOutcome:
    kind: str  # "pool" | "single"
    call: str | None  # negative | positive | suspicious | invalid | None (no result yet)
    retest: str | None = None  # a pooled sample's de-pool member status, if a case opened


POOL_READS = {
    "negative": "negative",
    "positive": "retest",
    "suspicious": "retest",
    "invalid": "invalid",
}
SINGLE_READS = {
    "negative": "negative",
    "positive": "positive",
    "suspicious": "positive",
    "invalid": "invalid",
}

RETEST_ANSWERS = ("negative", "positive", "invalid")


def resident_status(samples_oldest_first: Iterable[SampleOutcome]) -> str:
    status = "pending"
    single_status: str | None = None
    for sample in samples_oldest_first:
        if sample.call is None:
            continue
        if sample.kind == "single":
            single_status = SINGLE_READS[sample.call]
        elif sample.retest in RETEST_ANSWERS:
            single_status = sample.retest
        else:
            status = POOL_READS[sample.call]
    return single_status or status
