"""Plates whose controls failed (API.md v1.1, "Lab in the field").

A failed plate does not make its people "invalid, go and be swabbed again": the lab
re-runs the plate from the same tubes. Its tubes are ``rerun`` (residents see
``pending``) and the plate is listed at ``GET /labs/{lab}/reruns`` until a later
upload of the same plate id decides: with controls that pass, its tubes get their
results, and tubes missing from the re-run go back to ``received`` (still in the lab,
to be tested); with controls failing again, it keeps waiting. A tube that already had
a result keeps it: a failed run never changes a standing result. The lab may give a
plate up: its waiting tubes become ``invalid`` (a result version from the failed run),
and their people must be swabbed again.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from screening.db import raw_connection
from screening.errors import NotFound
from screening.results.schemas import RerunAbandoned, RerunList, RerunRead
from screening.retests.handover import TubeCall, after_results

# inside an upload: ``ingest_plates`` (each plate's verdict) and ``ingest_failed`` (the
# sample wells of failed plates) are staged
_MARK_FAILED = """
WITH plates AS (
    INSERT INTO plate_reruns (lab_id, plate, upload_id)
    SELECT $1, plate, $2 FROM ingest_plates WHERE controls = 'failed' ORDER BY plate
    ON CONFLICT (lab_id, plate) WHERE status = 'awaiting'
        DO UPDATE SET upload_id = EXCLUDED.upload_id, failed_at = now()
    RETURNING id, plate
), listed AS (
    INSERT INTO plate_rerun_tubes (rerun_id, tube_serial, upload_id, well, ct)
    SELECT DISTINCT ON (p.id, f.tube) p.id, f.tube, $2, f.well, f.ct
    FROM ingest_failed f JOIN plates p USING (plate) JOIN tubes t ON t.serial = f.tube
    WHERE t.state IN ('received', 'rerun')
    ORDER BY p.id, f.tube, f.line DESC
    ON CONFLICT (rerun_id, tube_serial)
        DO UPDATE SET upload_id = EXCLUDED.upload_id, well = EXCLUDED.well, ct = EXCLUDED.ct
)
UPDATE tubes t SET state = 'rerun'
WHERE t.serial IN (SELECT tube FROM ingest_failed) AND t.state = 'received'
"""


async def mark_failed_plates(conn: Any, *, upload_id: int, lab_id: int) -> None:
    """List this upload's failed plates as waiting for a re-run; their tubes wait."""
    await conn.execute(_MARK_FAILED, lab_id, upload_id)


# after an upload stored its results: its plates with passing controls decide
_CLOSE = """
WITH closed AS (
    UPDATE plate_reruns r SET status = 'rerun', closed_at = now(), closed_by = left($2, 60)
    FROM ingest_plates p
    WHERE r.lab_id = $1 AND r.status = 'awaiting' AND r.plate = p.plate AND p.controls = 'ok'
    RETURNING r.id
)
UPDATE tubes t SET state = 'received'
FROM plate_rerun_tubes rt
WHERE rt.rerun_id IN (SELECT id FROM closed) AND t.serial = rt.tube_serial
  AND t.state = 'rerun'
  AND NOT EXISTS (SELECT 1 FROM plate_rerun_tubes other JOIN plate_reruns r
                  ON r.id = other.rerun_id AND r.status = 'awaiting'
                  WHERE other.tube_serial = t.serial AND other.rerun_id NOT IN
                        (SELECT id FROM closed))
"""


async def close_rerun_plates(conn: Any, *, lab_id: int, actor: str) -> None:
    await conn.execute(_CLOSE, lab_id, actor)


_LIST = """
SELECT r.plate, r.failed_at, r.upload_id, u.filename,
       count(t.serial) FILTER (WHERE t.state = 'rerun') AS tubes
FROM plate_reruns r
JOIN uploads u ON u.id = r.upload_id
LEFT JOIN plate_rerun_tubes rt ON rt.rerun_id = r.id
LEFT JOIN tubes t ON t.serial = rt.tube_serial
WHERE r.lab_id = $1 AND r.status = 'awaiting'
GROUP BY r.id, u.filename
ORDER BY r.failed_at, r.plate
"""


async def list_reruns(session: AsyncSession, *, lab_id: int) -> RerunList:
    conn = await raw_connection(session)
    rows = await conn.fetch(_LIST, lab_id)
    return RerunList(items=[RerunRead(**dict(row)) for row in rows])


_ABANDON = """
WITH rerun AS (
    UPDATE plate_reruns SET status = 'abandoned', closed_at = now(), closed_by = left($3, 60)
    WHERE lab_id = $1 AND plate = $2 AND status = 'awaiting'
    RETURNING id, plate
), waiting AS (
    SELECT t.serial, coalesce(t.result_version, 0) + 1 AS version, rt.upload_id, rt.well, rt.ct,
           r.plate
    FROM rerun r JOIN plate_rerun_tubes rt ON rt.rerun_id = r.id
    JOIN tubes t ON t.serial = rt.tube_serial AND t.state = 'rerun'
), stored AS (
    INSERT INTO results (tube_serial, version, upload_id, plate, well, call, ct, controls_ok)
    SELECT serial, version, upload_id, plate, well, 'invalid', ct, false FROM waiting
)
SELECT (SELECT count(*) FROM rerun) AS found, array_agg(w.serial) AS serials,
       array_agg(w.version) AS versions
FROM waiting w
"""

_INVALIDATE = """
UPDATE tubes t SET state = 'resulted', result_call = 'invalid', result_version = v.version,
                   resulted_at = now()
FROM unnest($1::bigint[], $2::int[]) AS v(serial, version)
WHERE t.serial = v.serial
"""


async def abandon_plate(
    session: AsyncSession, *, lab_id: int, plate: str, actor: str
) -> RerunAbandoned:
    """Give up a plate waiting for its re-run: its waiting tubes become invalid."""
    conn = await raw_connection(session)
    await conn.execute(
        "SELECT 1 FROM tubes WHERE serial IN (SELECT rt.tube_serial FROM plate_rerun_tubes rt"
        " JOIN plate_reruns r ON r.id = rt.rerun_id WHERE r.lab_id = $1 AND r.plate = $2"
        " AND r.status = 'awaiting') ORDER BY serial FOR UPDATE",
        lab_id,
        plate,
    )
    row = await conn.fetchrow(_ABANDON, lab_id, plate, actor)
    if not row["found"]:
        raise NotFound(f"plate {plate} is not waiting for a re-run at this lab")
    serials: list[int] = row["serials"] or []
    if serials:
        await conn.execute(_INVALIDATE, serials, row["versions"])
        await after_results(conn, [TubeCall(s, "invalid") for s in serials], actor)
    return RerunAbandoned(plate=plate, status="abandoned", invalid=len(serials))
