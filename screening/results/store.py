"""Storing one instrument file: one upload, one transaction, set-based SQL.

1. Its rows go into a staging table by COPY: ``lis-csv`` is parsed by PostgreSQL
   itself (``COPY ... (FORMAT csv)``); a file COPY refuses (ragged rows) and the other
   formats are read by their parser in :mod:`lab_io.formats` and copied as records.
2. SQL checks every well (plate named, well inside a 384-well plate, Ct read as
   :mod:`lab_io.ct` says, the tube known and received by this lab, one sample per
   well), reads the plate controls, calls every tube with ``ct_call`` (the one
   definition, a SQL function from migration 0002), stores new result versions and
   moves tube states.
3. Rows for tubes not received yet are **held** (:mod:`screening.results.held`);
   tubes on a plate whose controls failed wait for its re-run
   (:mod:`screening.results.reruns`); tubes whose latest call changed are handed to
   de-pooling as typed :class:`TubeCall` values.
Nothing here builds an ORM object per row; a failure anywhere rolls the whole upload
back with the request's transaction.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, BinaryIO

from lab_io.ct import NO_AMPLIFICATION
from lab_io.formats.common import WellReading
from lab_io.kit import KitRule
from screening.results import held, reruns
from screening.results.ct_sql import sql_ct_ok, sql_ct_value
from screening.results.staging import (
    PIVOT,
    STAGING,
    UNKNOWN_TARGETS,
    load_lis_csv,
    load_readings,
)
from screening.retests.handover import TubeCall, after_results

log = logging.getLogger(__name__)

COLUMNS = {"ORF1ab": "orf1ab", "N": "n", "E": "e", "IC": "ic"}


def _ct_ok(column: str) -> str:
    return sql_ct_ok(column, "$1::text[]")


def _ct_value(column: str) -> str:
    return sql_ct_value(column, "$1::text[]")


def _checks(used: list[str]) -> str:
    """The checks of every staged well; ``used`` are the kit's target columns. The
    problem is found first; its sentence is written only for the rows that have one."""
    bad_ct = " ".join(f"WHEN NOT {_ct_ok('w.' + c)} THEN 'bad-ct' " for c in used)
    bad_ct_detail = " ".join(
        f"WHEN NOT {_ct_ok('c.raw_' + col)}"
        f" THEN format('Ct %L for {t} is not a number from 0 to 50', left(c.raw_{col}, 40)) "
        for t, col in COLUMNS.items()
        if col in used
    )
    well = (
        "CASE WHEN w.well ~* '^[A-P]0*([1-9]|1[0-9]|2[0-4])$'"
        " THEN upper(left(w.well, 1)) || ltrim(substr(w.well, 2), '0') END"
    )
    raw = ", ".join(f"w.{col} AS raw_{col}" for col in COLUMNS.values() if col in used)
    return f"""
    CREATE TEMP TABLE ingest_checked ON COMMIT DROP AS
    SELECT c.line, c.lines, c.plate, c.well, c.raw_well, c.sample, c.role,
           c.orf1ab, c.n, c.e, c.ic, c.tube, c.problem,
           CASE c.problem
                WHEN 'no-plate'
                     THEN 'the file names no plate: send the plate field with the upload'
                WHEN 'bad-plate' THEN 'the plate id is longer than 100 characters'
                WHEN 'bad-role'
                     THEN format('role %L is not sample, ntc or pc', left(c.role, 40))
                WHEN 'bad-well'
                     THEN format('well %L is outside the plate (A1-H12, or A1-P24)',
                                 left(c.raw_well, 40))
                WHEN 'bad-ct' THEN CASE {bad_ct_detail} END
                WHEN 'unknown-tube' THEN format('tube %L is not known', left(c.sample, 40))
                WHEN 'tube-rejected'
                     THEN format('tube %s was rejected at receipt; its people are recalled',
                                 c.sample)
                WHEN 'tube-not-received'
                     THEN format('tube %s was not received by this lab', c.sample)
           END AS detail
    FROM (
        SELECT w.line, w.lines, w.plate, {well} AS well, w.well AS raw_well, w.sample, w.role,
               {_ct_value("w.orf1ab")} AS orf1ab, {_ct_value("w.n")} AS n,
               {_ct_value("w.e")} AS e, {_ct_value("w.ic")} AS ic, {raw},
               t.serial AS tube,
               CASE WHEN w.plate IS NULL THEN 'no-plate'
                    WHEN length(w.plate) > 100 THEN 'bad-plate'
                    WHEN w.role NOT IN ('sample', 'ntc', 'pc') THEN 'bad-role'
                    WHEN {well} IS NULL THEN 'bad-well'
                    {bad_ct}
                    WHEN w.role <> 'sample' THEN NULL
                    WHEN t.serial IS NULL THEN 'unknown-tube'
                    WHEN t.state IN ('sealed', 'packed', 'in_transit')
                         AND coalesce((SELECT b.lab_id FROM boxes b WHERE b.id = t.box_id),
                                      $2) = $2
                         THEN 'held'
                    WHEN t.state = 'rejected' THEN 'tube-rejected'
                    WHEN t.lab_id IS DISTINCT FROM $2
                         OR t.state NOT IN ('received', 'resulted', 'rerun')
                         THEN 'tube-not-received'
               END AS problem
        FROM ingest_wells w
        LEFT JOIN tubes t ON w.role = 'sample' AND t.barcode = w.sample
    ) c
    """


_CONFLICTS = """
WITH ranked AS (
    SELECT ctid, sample, tube,
           first_value(sample) OVER (PARTITION BY plate, well ORDER BY line) AS first_sample,
           row_number() OVER (PARTITION BY plate, well, sample ORDER BY line) AS repeat
    FROM ingest_checked WHERE problem IS NULL
)
UPDATE ingest_checked c SET
    problem = CASE WHEN r.sample <> r.first_sample THEN 'well-conflict' ELSE 'repeat' END,
    detail = CASE WHEN r.sample <> r.first_sample
                  THEN format('well %s of plate %s already holds %s', c.well, c.plate,
                              r.first_sample) END
FROM ranked r
WHERE c.ctid = r.ctid AND (r.sample <> r.first_sample OR r.repeat > 1)
"""


_PLATES = """
CREATE TEMP TABLE ingest_plates ON COMMIT DROP AS
SELECT plate,
       CASE WHEN count(*) FILTER (WHERE role = 'ntc') > 0
             AND count(*) FILTER (WHERE role = 'pc') > 0
             AND bool_and(CASE role
                 WHEN 'ntc' THEN ct_call(orf1ab, n, e, ic, $1, $2, $3, false, $5, $6, $7)
                                 = 'negative'
                 WHEN 'pc' THEN ct_call(orf1ab, n, e, ic, $1, $2, $3, $4, $5, $6, $7)
                                = 'positive'
                 ELSE true END)
            THEN 'ok' ELSE 'failed' END AS controls,
       count(*)::int AS wells
FROM ingest_checked WHERE problem IS NULL
GROUP BY plate
"""

_LOCK_TUBES = """
SELECT count(*) FROM (
    SELECT 1 FROM tubes WHERE serial IN (SELECT tube FROM ingest_checked WHERE problem IS NULL)
    ORDER BY serial FOR UPDATE
) locked
"""

# Each sample well of a plate whose controls passed: its call, whether the tube's
# latest result already says the same (a duplicate: no new version), and the version
# it is stored as.
_CALLS = """
CREATE TEMP TABLE ingest_calls ON COMMIT DROP AS
SELECT k.*,
       CASE WHEN k.duplicate THEN NULL
            ELSE k.base_version + row_number() OVER (PARTITION BY k.tube, k.duplicate
                                                     ORDER BY k.line) END AS version
FROM (
    SELECT c.line, c.lines, c.tube, c.plate, c.well, x.call, true AS controls_ok, x.ct,
           (t.kind = 'single' OR t.capacity = 1) AS single,
           coalesce(t.result_version, 0) AS base_version,
           coalesce(r.plate = c.plate AND r.well = c.well AND r.ct = x.ct, false) AS duplicate
    FROM ingest_checked c
    JOIN ingest_plates p USING (plate)
    JOIN tubes t ON t.serial = c.tube
    LEFT JOIN results r ON r.tube_serial = t.serial AND r.version = t.result_version
    CROSS JOIN LATERAL (SELECT
        ct_call(c.orf1ab, c.n, c.e, c.ic, $1, $2, $3, $4, $5, $6, $7) AS call,
        jsonb_build_object('ORF1ab', c.orf1ab, 'N', c.n, 'E', c.e, 'IC', c.ic) AS ct) x
    WHERE c.problem IS NULL AND c.role = 'sample' AND p.controls = 'ok'
) k
"""

# sample wells of plates whose controls failed: their tubes wait for the re-run
_FAILED = """
CREATE TEMP TABLE ingest_failed ON COMMIT DROP AS
SELECT c.line, c.lines, c.tube, c.plate, c.well,
       jsonb_build_object('ORF1ab', c.orf1ab, 'N', c.n, 'E', c.e, 'IC', c.ic) AS ct
FROM ingest_checked c JOIN ingest_plates p USING (plate)
WHERE c.problem IS NULL AND c.role = 'sample' AND p.controls = 'failed'
"""

_STORE = """
INSERT INTO results (tube_serial, version, upload_id, plate, well, call, ct, controls_ok)
SELECT tube, version, $1, plate, well, call, ct, controls_ok
FROM ingest_calls WHERE NOT duplicate
"""

# each tube's new latest result
_RESULTED = """
CREATE TEMP TABLE ingest_resulted ON COMMIT DROP AS
SELECT DISTINCT ON (tube) tube, version, call, single FROM ingest_calls
WHERE NOT duplicate ORDER BY tube, version DESC
"""

# what de-pooling needs to see: pools that call for a case, and single tubes (a pool of
# one is a single), whose calls may answer a case
_HAND_OVER = """
SELECT tube, call FROM ingest_resulted
WHERE call IN ('positive', 'suspicious') OR single
ORDER BY tube
"""

_MOVE_TUBES = """
UPDATE tubes t SET state = 'resulted', result_call = k.call, result_version = k.version,
                   resulted_at = now()
FROM ingest_resulted k
WHERE t.serial = k.tube
"""

_PLATE_RUNS = """
INSERT INTO plate_runs (upload_id, plate, controls, wells)
SELECT $1, plate, controls, wells FROM ingest_plates
"""

MAX_REJECTIONS_LISTED = 10_000
# a plate's tubes by call, and those waiting for the plate's re-run
SUMMARY_CALLS = ("negative", "positive", "suspicious", "invalid", "rerun")

_PLATE_CALLS = """
SELECT plate, call, count(*) AS n FROM ingest_calls WHERE NOT duplicate GROUP BY 1, 2
UNION ALL
SELECT plate, 'rerun', count(DISTINCT tube) FROM ingest_failed GROUP BY 1
"""

_REJECTED = """
SELECT line, type, detail FROM (
    SELECT unnest(lines) AS line, problem AS type, detail
    FROM ingest_checked WHERE problem IS NOT NULL AND problem NOT IN ('repeat', 'held')
    UNION ALL
    SELECT line, type, detail FROM ingest_unknown
) r ORDER BY line LIMIT $1
"""

_COUNTS = """
SELECT
  (SELECT coalesce(sum(cardinality(lines)), 0) FROM ingest_checked
    WHERE problem IS NULL AND role <> 'sample')
  + (SELECT coalesce(sum(cardinality(lines)), 0) FROM ingest_calls WHERE NOT duplicate)
  + (SELECT coalesce(sum(cardinality(lines)), 0) FROM ingest_failed) AS accepted,
  (SELECT coalesce(sum(cardinality(lines)), 0) FROM ingest_checked WHERE problem = 'repeat')
  + (SELECT coalesce(sum(cardinality(lines)), 0) FROM ingest_calls WHERE duplicate)
    AS duplicate,
  (SELECT coalesce(sum(cardinality(lines)), 0) FROM ingest_checked
    WHERE problem IS NOT NULL AND problem NOT IN ('repeat', 'held'))
  + (SELECT count(*) FROM ingest_unknown) AS rejected
"""


class _Steps:
    """How long each step of one upload took, logged as one line (no personal data)."""

    def __init__(self, upload_id: int) -> None:
        self.upload_id = upload_id
        self.last = time.perf_counter()
        self.steps: list[tuple[str, float]] = []

    def mark(self, name: str) -> None:
        now = time.perf_counter()
        self.steps.append((name, now - self.last))
        self.last = now

    def log(self) -> None:
        log.info(
            "upload %s: %s",
            self.upload_id,
            ", ".join(f"{name} {seconds:.2f}s" for name, seconds in self.steps),
        )


async def ingest_file(
    conn: Any,
    raw: BinaryIO,
    *,
    upload_id: int,
    lab_id: int,
    fmt: str,
    kit: KitRule,
    plate: str | None,
    readings: Callable[[], AsyncIterator[list[WellReading]]],
    actor: str,
) -> dict[str, Any]:
    """Stage, check, call and store one file on ``conn`` (inside the caller's
    transaction); answer the upload summary (API.md, Results)."""
    await conn.execute(STAGING)
    steps = _Steps(upload_id)
    copied = fmt == "lis-csv" and await load_lis_csv(conn, raw, plate)
    steps.mark("copy")
    if not copied:
        async for batch in readings():
            await load_readings(conn, batch, plate)
        await conn.execute(PIVOT, kit.known_targets())
        steps.mark("parse, copy and pivot")
    await conn.execute(
        "CREATE TEMP TABLE ingest_unknown ON COMMIT DROP AS " + UNKNOWN_TARGETS,
        kit.known_targets(),
    )
    rows = await conn.fetchval(
        "SELECT count(*) FROM ingest_wells"
        if copied
        else "SELECT count(DISTINCT line) FROM ingest_readings"
    )
    used = [COLUMNS[t] for t in kit.known_targets()]
    # temp tables have no statistics until analysed: without them the planner picks
    # nested loops over hundreds of thousands of rows
    await conn.execute("ANALYZE ingest_wells")
    await conn.execute(_checks(used), sorted(NO_AMPLIFICATION), lab_id)
    await conn.execute("ANALYZE ingest_checked")
    steps.mark("checks")
    await conn.execute(_CONFLICTS)
    steps.mark("conflicts")
    rule = (
        "ORF1ab" in kit.targets,
        "N" in kit.targets,
        "E" in kit.targets,
        kit.control is not None,
        kit.positive_ct_max,
        kit.grey_ct_max,
        kit.control_ct_max,
    )
    await conn.execute(_PLATES, *rule)
    await conn.execute("ANALYZE ingest_plates")
    steps.mark("plates")
    await conn.fetchval(_LOCK_TUBES)
    steps.mark("lock tubes")
    await conn.execute(_CALLS, *rule)
    await conn.execute("ANALYZE ingest_calls")
    await conn.execute(_FAILED)
    steps.mark("calls")
    await reruns.mark_failed_plates(conn, upload_id=upload_id, lab_id=lab_id)
    held_rows = await held.hold_rows(conn, upload_id=upload_id, lab_id=lab_id, rule=rule)
    await conn.execute(_STORE, upload_id)
    steps.mark("store results")
    await conn.execute(_RESULTED)
    await conn.execute(_MOVE_TUBES)
    await reruns.close_rerun_plates(conn, lab_id=lab_id, actor=actor)
    steps.mark("move tubes")
    handed = await conn.fetch(_HAND_OVER)
    await after_results(conn, [TubeCall(row["tube"], row["call"]) for row in handed], actor)
    steps.mark("de-pooling")
    await conn.execute(_PLATE_RUNS, upload_id)
    counts = await conn.fetchrow(_COUNTS)
    steps.mark("count")
    rejected = await conn.fetch(_REJECTED, MAX_REJECTIONS_LISTED)
    plates = [
        {**dict(p), "calls": dict.fromkeys(SUMMARY_CALLS, 0)}
        for p in await conn.fetch("SELECT plate, controls, wells FROM ingest_plates ORDER BY plate")
    ]
    by_plate = {p["plate"]: p["calls"] for p in plates}
    for row in await conn.fetch(_PLATE_CALLS):
        by_plate[row["plate"]][row["call"]] = row["n"]
    steps.mark("summary")
    steps.log()
    return {
        "upload_id": upload_id,
        "format": fmt,
        "rows": rows,
        "accepted": counts["accepted"],
        "duplicate": counts["duplicate"],
        "held": held_rows,
        "rejected": [dict(r) for r in rejected],
        "rejected_total": counts["rejected"],
        "plates": plates,
        # every called tube sits on a plate of this upload: the plates' calls add up
        "tubes": {call: sum(p["calls"][call] for p in plates) for call in SUMMARY_CALLS},
    }


__all__ = ["ingest_file"]
