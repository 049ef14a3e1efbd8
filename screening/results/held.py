"""Results that arrive before the box scan (API.md v1.1, "Lab in the field").

A row for a tube the lab has not received yet (sealed, packed or on its way) is
**held**, not rejected: its call is made at upload time (with that upload's kit and
that plate's controls) and kept in ``held_results``. When the lab receives the tube,
its held rows become result versions in the order they arrived, as if uploaded then;
a tube whose held rows all came from a plate with failed controls waits for that
plate's re-run instead.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from screening.db import raw_connection
from screening.retests.handover import TubeCall, after_results

# the staged rows of one upload for tubes not received yet (``ingest_checked``)
_HOLD = """
WITH held AS (
    INSERT INTO held_results (lab_id, upload_id, tube_serial, line, plate, well, call, ct,
                              controls_ok)
    SELECT $8, $9, c.tube, c.line, c.plate, c.well,
           CASE WHEN p.controls = 'ok'
                THEN ct_call(c.orf1ab, c.n, c.e, c.ic, $1, $2, $3, $4, $5, $6, $7) END,
           jsonb_build_object('ORF1ab', c.orf1ab, 'N', c.n, 'E', c.e, 'IC', c.ic),
           coalesce(p.controls = 'ok', false)
    FROM ingest_checked c LEFT JOIN ingest_plates p USING (plate)
    WHERE c.problem = 'held'
    ORDER BY c.line
    RETURNING 1
)
SELECT (SELECT count(*) FROM held),
       (SELECT coalesce(sum(cardinality(lines)), 0) FROM ingest_checked
        WHERE problem = 'held')
"""


async def hold_rows(
    conn: Any, *, upload_id: int, lab_id: int, rule: tuple[bool | float | None, ...]
) -> int:
    """Keep the staged rows of tubes not received yet; answer how many file lines."""
    row = await conn.fetchrow(_HOLD, *rule, lab_id, upload_id)
    return int(row[1])


# held rows whose plate passed its controls become versions, oldest first
_APPLY = """
WITH applied AS (
    INSERT INTO results (tube_serial, version, upload_id, plate, well, call, ct, controls_ok)
    SELECT h.tube_serial,
           coalesce(t.result_version, 0)
               + row_number() OVER (PARTITION BY h.tube_serial ORDER BY h.id),
           h.upload_id, h.plate, h.well, h.call, h.ct, true
    FROM held_results h JOIN tubes t ON t.serial = h.tube_serial
    WHERE h.tube_serial = ANY($1::bigint[]) AND h.lab_id = $2 AND h.controls_ok
      AND t.state = 'received' AND t.lab_id = $2
    ORDER BY h.tube_serial, h.id
    RETURNING tube_serial, version, call
), latest AS (
    SELECT DISTINCT ON (tube_serial) tube_serial, version, call FROM applied
    ORDER BY tube_serial, version DESC
)
UPDATE tubes t SET state = 'resulted', result_call = l.call, result_version = l.version,
                   resulted_at = now()
FROM latest l WHERE t.serial = l.tube_serial
RETURNING t.serial, t.result_call
"""

# tubes whose held rows all came from failed plates: wait for that plate's re-run
_TO_RERUN = """
WITH waiting AS (
    SELECT DISTINCT ON (h.tube_serial) h.tube_serial, h.plate, h.well, h.ct, h.upload_id
    FROM held_results h JOIN tubes t ON t.serial = h.tube_serial
    WHERE h.tube_serial = ANY($1::bigint[]) AND h.lab_id = $2 AND NOT h.controls_ok
      AND t.state = 'received' AND t.lab_id = $2
    ORDER BY h.tube_serial, h.id DESC
), plates AS (
    INSERT INTO plate_reruns (lab_id, plate, upload_id)
    SELECT DISTINCT ON (plate) $2, plate, upload_id FROM waiting ORDER BY plate, upload_id DESC
    ON CONFLICT (lab_id, plate) WHERE status = 'awaiting' DO NOTHING
    RETURNING id, plate
), reruns AS (
    SELECT id, plate FROM plates
    UNION ALL
    SELECT r.id, r.plate FROM plate_reruns r
    WHERE r.lab_id = $2 AND r.status = 'awaiting' AND r.plate IN (SELECT plate FROM waiting)
), listed AS (
    INSERT INTO plate_rerun_tubes (rerun_id, tube_serial, upload_id, well, ct)
    SELECT r.id, w.tube_serial, w.upload_id, w.well, w.ct
    FROM waiting w JOIN reruns r ON r.plate = w.plate
    ON CONFLICT (rerun_id, tube_serial) DO NOTHING
)
UPDATE tubes t SET state = 'rerun' FROM waiting w WHERE t.serial = w.tube_serial
"""

_DONE = """
DELETE FROM held_results h USING tubes t
WHERE h.tube_serial = ANY($1::bigint[]) AND h.lab_id = $2
  AND t.serial = h.tube_serial AND t.lab_id = $2 AND t.state IN ('resulted', 'rerun')
"""


async def apply_held(
    session: AsyncSession, *, lab_id: int, tube_serials: list[int], actor: str
) -> int:
    """Apply the held rows of tubes this lab just received; answer how many tubes got
    a result from them."""
    if not tube_serials:
        return 0
    conn = await raw_connection(session)
    if not await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM held_results WHERE tube_serial = ANY($1::bigint[])"
        " AND lab_id = $2)",
        tube_serials,
        lab_id,
    ):
        return 0
    resulted = await conn.fetch(_APPLY, tube_serials, lab_id)
    await conn.execute(_TO_RERUN, tube_serials, lab_id)
    await conn.execute(_DONE, tube_serials, lab_id)
    await after_results(conn, [TubeCall(r["serial"], r["result_call"]) for r in resulted], actor)
    return len(resulted)
