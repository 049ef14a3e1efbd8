"""A resident's standing in one round, from all their samples in it (API.md, Residents;
"Standing rules" in API.md v1.1).

- A single tube's result reads as itself, except that a ``suspicious`` single reads
  ``retest``: one target or a grey-zone Ct is not a confirmed positive, the person is
  sampled and tested again alone (often with a second kit). The newest single tube
  with a result wins, because a single re-test is the answer to a pooled one.
- A pool of one (``pool_size`` 1, isolation points) is a single: the caller passes
  such a sample as ``kind="single"``.
- Otherwise the pool's result: negative reads ``negative``; positive or suspicious
  reads ``retest`` (the person must be swabbed alone); invalid reads ``invalid``
  (sample again).
- A pooled sample with an open de-pool case reads ``retest`` whatever the pool's
  latest result says: a later negative re-run of the pool does not release the
  people the squad is recalling. It ends with this person's single re-test answer
  (in this round or a later one), which reads as that answer.
- No result yet (or the tube waits for its plate to be re-run): ``pending``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SampleOutcome:
    kind: str  # "pool" | "single" (a pool of one is passed as "single")
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
    "suspicious": "retest",
    "invalid": "invalid",
}

RETEST_ANSWERS = ("negative", "positive", "invalid")


def resident_status(samples_oldest_first: Iterable[SampleOutcome]) -> str:
    status = "pending"
    single_status: str | None = None
    for sample in samples_oldest_first:
        if sample.kind == "single":
            if sample.call is not None:
                single_status = SINGLE_READS[sample.call]
        elif sample.retest in RETEST_ANSWERS:
            single_status = sample.retest
        elif sample.retest is not None:
            status = "retest"
        elif sample.call is not None:
            status = POOL_READS[sample.call]
    return single_status or status
