"""One source of truth (issue 11): the online scan's SQL and the offline replay answer
exactly as the pure rules of :mod:`pooling.scan_rules` / :mod:`pooling.tubes` say, for
every tube kind, state, fill, membership and scan kind; and after an accepted swab the
tube's count and state in the database are the pure module's."""

from __future__ import annotations

import io
import itertools
from datetime import UTC, datetime

from sqlalchemy import text

from pooling.barcodes import parse_barcode
from pooling.scan_rules import Swab, swab_refusal
from pooling.tubes import TubeKind, TubeSlots, TubeState

STATES = list(TubeState)
CASES = [
    (tube_kind, state, count, member, scan_kind)
    for tube_kind, state, member, scan_kind in itertools.product(
        list(TubeKind), STATES, (False, True), list(TubeKind)
    )
    for count in ((1, 10) if tube_kind is TubeKind.POOL else (1,))
]


async def census(scene, n):
    lines = ["id_type,id_number,name,phone,district"]
    lines += [f"other,R{i:07d},居民{i},,D1" for i in range(n)]
    r = await scene.client.post(
        "/residents/import",
        headers=scene.tokens["admin"],
        files={"file": ("census.csv", io.BytesIO("\n".join(lines).encode()), "text/csv")},
    )
    return [c["resident_code"] for c in r.json()["codes"]]


async def ids_of(db_session, codes):
    rows = await db_session.execute(
        text("SELECT code, id FROM residents WHERE code = ANY(:codes)"), {"codes": codes}
    )
    return dict(rows.all())


async def make_tube(db_session, scene, barcode, kind, state, count, members):
    """A tube as it could stand in the database, with ``members`` (resident ids)."""
    capacity = 10 if kind is TubeKind.POOL else 1
    serial = parse_barcode(barcode)
    point = await db_session.scalar(text("SELECT id FROM sampling_points WHERE code = 'P1'"))
    await db_session.execute(
        text(
            "INSERT INTO tubes (serial, barcode, round_id, sampling_point_id, kind, capacity,"
            " count, state) VALUES (:s, :b, :r, :p, :k, :c, :n, :st)"
        ),
        {
            "s": serial,
            "b": barcode,
            "r": scene.round_id,
            "p": point,
            "k": kind.value,
            "c": capacity,
            "n": count,
            "st": state.value,
        },
    )
    for position, resident in enumerate(members, start=1):
        await db_session.execute(
            text(
                "INSERT INTO samples (round_id, tube_serial, resident_id, kind, position)"
                " VALUES (:r, :s, :p, :k, :pos)"
            ),
            {"r": scene.round_id, "s": serial, "p": resident, "k": kind.value, "pos": position},
        )
    return TubeSlots(barcode, kind, capacity, count, state, set(members))


def expected(slots, resident, scan_kind):
    swab = Swab(
        barcode=slots.barcode,
        kind=scan_kind,
        issued=True,
        own_point=True,
        at=datetime.now(UTC),
        closed_at=None,
        resident_id=resident,
        needs_single=False,
        earlier=None,
    )
    refused = swab_refusal(swab, slots)
    if refused is not None:
        return refused.type, None
    slots.add(resident, scan_kind)
    return None, (slots.count, slots.state.value)


async def held(db_session, barcode):
    row = (
        await db_session.execute(
            text("SELECT count, state FROM tubes WHERE serial = :s"), {"s": parse_barcode(barcode)}
        )
    ).one()
    return row.count, row.state


async def test_the_online_scan_and_the_replay_answer_as_the_pure_rules_in_every_state(
    scene, db_session
):
    issued = await scene.ok(
        f"/rounds/{scene.round_id}/barcodes", {"sampling_point": "P1", "count": 2 * len(CASES)}
    )
    listing = await scene.client.get(
        f"/rounds/{scene.round_id}/barcodes/{issued['range_id']}", headers=scene.tokens["admin"]
    )
    barcodes = iter(listing.json()["barcodes"])
    codes = await census(scene, 10 + 2 * len(CASES))
    ids = await ids_of(db_session, codes)
    fillers, scanned = codes[:10], iter(codes[10:])
    seen = set()
    for tube_kind, state, count, member, scan_kind in CASES:
        answers = {}
        for path in ("online", "sync"):
            barcode, code = next(barcodes), next(scanned)
            others = [ids[c] for c in fillers[: count - 1 if member else count]]
            members = [*others, ids[code]] if member else others
            slots = await make_tube(db_session, scene, barcode, tube_kind, state, count, members)
            want, after = expected(slots, ids[code], scan_kind)
            if path == "online":
                r = await scene.sample(barcode, code, kind=scan_kind.value)
                got = None if r.status_code == 201 else r.json()["type"]
            else:
                event = {
                    "event_id": f"{barcode}-e",
                    "type": "sample",
                    "tube": barcode,
                    "resident_code": code,
                    "kind": scan_kind.value,
                }
                body = (
                    await scene.post(f"/rounds/{scene.round_id}/sync", {"events": [event]})
                ).json()
                got = body["rejected"][0]["type"] if body["rejected"] else None
            case = (tube_kind.value, state.value, count, member, scan_kind.value, path)
            assert got == want, case
            if after is not None:
                assert await held(db_session, barcode) == after, case
            answers[path] = got
            seen.add(got)
        assert answers["online"] == answers["sync"]
    # every tube-level refusal and the accepted swab were met
    assert seen == {None, "already-in-tube", "tube-kind-mismatch", "tube-full", "tube-sealed"}
