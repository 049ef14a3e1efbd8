"""The hand-over from lab results to de-pooling: an explicit, typed list of tubes whose
latest call changed (an upload, held rows applied at receipt, a tube rejected at
receipt, an abandoned plate). Cases open in the same transaction as the result that
opens them (DOMAIN.md step 8); every change writes a ``retest_events`` row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

SINGLE_TUBE = "(t.kind = 'single' OR t.capacity = 1)"  # a pool of one is a single


@dataclass(frozen=True, slots=True)
class TubeCall:
    """One tube's new latest call, as the results side hands it to de-pooling."""

    tube_serial: int
    call: str  # negative | positive | suspicious | invalid


_HANDED = "unnest($1::bigint[], $2::text[]) AS r(tube, call)"

# a member's status from their single tube's call: a suspicious single is recalled
# and tested alone again (to-recall), never a positive
_MEMBER_STATUS = (
    "CASE {call} WHEN 'negative' THEN 'negative' WHEN 'positive' THEN 'positive'"
    " WHEN 'invalid' THEN 'invalid' ELSE 'to-recall' END"
)

_OPEN_CASES = f"""
WITH opened AS (
    INSERT INTO retest_cases (round_id, pool_tube_serial, sampling_point_id, lab_id,
                              pool_result)
    SELECT t.round_id, t.serial, t.sampling_point_id, t.lab_id, r.call
    FROM {_HANDED} JOIN tubes t ON t.serial = r.tube
    WHERE t.kind = 'pool' AND t.capacity > 1 AND r.call IN ('positive', 'suspicious')
    ORDER BY t.serial
    ON CONFLICT (pool_tube_serial) DO NOTHING
    RETURNING id, round_id, pool_tube_serial, sampling_point_id
), members AS (
    INSERT INTO retest_members (case_id, resident_id)
    SELECT DISTINCT o.id, s.resident_id
    FROM opened o JOIN samples s ON s.tube_serial = o.pool_tube_serial
)
INSERT INTO retest_events (round_id, case_id, sampling_point_id, kind, to_status, actor)
SELECT round_id, id, sampling_point_id, 'case-opened', 'open', $3 FROM opened ORDER BY id
"""

# Single re-swabs not linked when they were taken: those taken after the pool was
# sampled but before its case opened (the lab phoned ahead of the upload), and pools of
# one (a single by the standing rules, though scanned as a pool). Found from both
# sides of the hand-over (a case's pool tube, or the single tube itself); the member is
# linked to their newest one and reads its call at once when it has one.
_LINK_EARLIER_SINGLES = f"""
WITH pairs AS (
    SELECT c.id AS case_id FROM {_HANDED}
    JOIN retest_cases c ON c.pool_tube_serial = r.tube AND c.status = 'open'
    UNION
    SELECT m.case_id FROM {_HANDED}
    JOIN tubes st ON st.serial = r.tube AND {SINGLE_TUBE.replace("t.", "st.")}
    JOIN samples s ON s.tube_serial = st.serial
    JOIN retest_members m ON m.resident_id = s.resident_id AND m.status = 'to-recall'
                         AND m.single_tube_serial IS NULL
), found AS (
    SELECT DISTINCT ON (m.case_id, m.resident_id)
           m.case_id, m.resident_id, st.serial, st.result_call, c.round_id, c.sampling_point_id
    FROM pairs
    JOIN retest_cases c ON c.id = pairs.case_id AND c.status = 'open'
    JOIN retest_members m ON m.case_id = c.id AND m.status = 'to-recall'
                         AND m.single_tube_serial IS NULL
    JOIN samples ps ON ps.tube_serial = c.pool_tube_serial AND ps.resident_id = m.resident_id
    JOIN samples s ON s.resident_id = m.resident_id AND s.sampled_at >= ps.sampled_at
    JOIN tubes st ON st.serial = s.tube_serial AND st.serial <> c.pool_tube_serial
    WHERE {SINGLE_TUBE.replace("t.", "st.")}
    ORDER BY m.case_id, m.resident_id, s.sampled_at DESC, s.id DESC
), changed AS (
    UPDATE retest_members m
    SET single_tube_serial = f.serial, updated_at = now(),
        status = CASE WHEN f.result_call IS NULL THEN 'resampled'
                      ELSE {_MEMBER_STATUS.format(call="f.result_call")} END
    FROM found f
    WHERE m.case_id = f.case_id AND m.resident_id = f.resident_id
    RETURNING m.case_id, m.resident_id, m.status, f.round_id, f.sampling_point_id
)
INSERT INTO retest_events (round_id, case_id, sampling_point_id, resident_id, kind,
                           from_status, to_status, actor)
SELECT round_id, case_id, sampling_point_id, resident_id, 'member-resampled', 'to-recall',
       status, $3
FROM changed ORDER BY case_id, resident_id
"""

_MEMBERS_RESULTED = f"""
WITH changed AS (
    UPDATE retest_members m
    SET status = {_MEMBER_STATUS.format(call="r.call")}, updated_at = now()
    FROM {_HANDED}, retest_members old, retest_cases c
    WHERE m.single_tube_serial = r.tube
      AND old.case_id = m.case_id AND old.resident_id = m.resident_id
      AND c.id = m.case_id AND c.status = 'open'
      AND m.status <> {_MEMBER_STATUS.format(call="r.call")}
    RETURNING m.case_id, m.resident_id, old.status AS from_status, m.status AS to_status,
              c.round_id, c.sampling_point_id
)
INSERT INTO retest_events (round_id, case_id, sampling_point_id, resident_id, kind,
                           from_status, to_status, actor)
SELECT round_id, case_id, sampling_point_id, resident_id, 'member-resulted', from_status,
       to_status, $3
FROM changed ORDER BY case_id, resident_id
"""

_RESOLVE = f"""
WITH touched AS (
    SELECT m.case_id AS id FROM {_HANDED} JOIN retest_members m ON m.single_tube_serial = r.tube
    UNION
    SELECT c.id FROM {_HANDED} JOIN retest_cases c ON c.pool_tube_serial = r.tube
), resolved AS (
    UPDATE retest_cases c
    SET status = 'resolved', resolved_at = now(),
        discordant = NOT EXISTS (SELECT 1 FROM retest_members m
                                 WHERE m.case_id = c.id AND m.status = 'positive')
    WHERE c.status = 'open' AND c.id IN (SELECT id FROM touched)
      AND NOT EXISTS (SELECT 1 FROM retest_members m
                      WHERE m.case_id = c.id AND m.status NOT IN ('negative', 'positive'))
    RETURNING c.id, c.round_id, c.sampling_point_id
)
INSERT INTO retest_events (round_id, case_id, sampling_point_id, kind, from_status, to_status,
                           actor)
SELECT round_id, id, sampling_point_id, 'case-resolved', 'open', 'resolved', $3
FROM resolved ORDER BY id
"""


async def after_results(conn: Any, calls: Sequence[TubeCall], actor: str) -> None:
    """Open cases for positive/suspicious pools (a pool of one is a single and opens
    none), link members' earlier single re-swabs, move members with their single
    results, resolve finished cases. ``conn`` is the caller's asyncpg connection,
    inside its transaction."""
    if not calls:
        return
    args = ([c.tube_serial for c in calls], [c.call for c in calls], actor)
    await conn.execute(_OPEN_CASES, *args)
    await conn.execute(_LINK_EARLIER_SINGLES, *args)
    await conn.execute(_MEMBERS_RESULTED, *args)
    await conn.execute(_RESOLVE, *args)
