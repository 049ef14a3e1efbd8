"""Every endpoint x every role (API.md, Conventions and each section): admin, the
sampler of this point, a sampler of another point, the lab of this lab, another lab,
no token. Each cell is allowed (any answer but 401/403) or denied exactly as written.

One world per endpoint: a P1 tube with two people sealed in box BOX-S (packed),
another P1 tube in box BOX-R dispatched to L1, a positive pool resulted at L1 (so a
de-pool case and an upload exist). Denied roles go first, so the allowed calls that
change things come after every refusal was checked.
"""

from __future__ import annotations

import pytest

ROLES = ("none", "P2", "L2", "L1", "P1", "admin")  # denied-prone first
ADMIN = {"admin"}
SAMPLING = {"admin", "P1"}  # admin, or the sampler of that point
ANY = {"admin", "P1", "P2", "L1", "L2"}

# name, method, path, body (callable on the world), allowed roles,
# roles answered 200 but filtered to their own (nothing of another's shown)
ENDPOINTS = [
    ("tokens", "POST", "/tokens", lambda w: {"role": "admin"}, ADMIN),
    (
        "districts",
        "POST",
        "/districts",
        lambda w: {"code": "X", "name": "x", "population": 1},
        ADMIN,
    ),
    ("list districts", "GET", "/districts", None, ANY),
    (
        "sampling points",
        "POST",
        "/sampling-points",
        lambda w: {
            "code": "X1",
            "name": "x",
            "address": "x",
            "district": "D1",
            "stations": 1,
            "people_per_hour_per_station": 60,
        },
        ADMIN,
    ),
    (
        "labs",
        "POST",
        "/labs",
        lambda w: {"code": "LX", "name": "x", "daily_capacity_tubes": 1},
        ADMIN,
    ),
    (
        "residents",
        "POST",
        "/residents",
        lambda w: {
            "id_type": "passport",
            "id_number": "E1234567",
            "nationality": "USA",
            "name": "x",
            "district": "D1",
        },
        {"admin", "P1", "P2"},  # a sampler registers walk-ins
    ),
    ("import", "POST", "/residents/import", "census", ADMIN),
    # a masked record is what a clerk sees after a scan; a lab has no need for it
    ("resident", "GET", "/residents/{resident}", None, {"admin", "P1", "P2"}),
    (
        "rounds",
        "POST",
        "/rounds",
        lambda w: {
            "name": "r",
            "pool_size": 10,
            "districts": ["D1"],
            "starts_at": "2026-11-22T06:00:00+08:00",
            "deadline": "2026-11-23T06:00:00+08:00",
        },
        ADMIN,
    ),
    ("list rounds", "GET", "/rounds", None, ANY),
    ("plan", "GET", "/rounds/{r}/plan", None, ADMIN),
    (
        "barcodes",
        "POST",
        "/rounds/{r}/barcodes",
        lambda w: {"sampling_point": "P1", "count": 1},
        ADMIN,
    ),
    ("range", "GET", "/rounds/{r}/barcodes/1", None, ADMIN),
    ("labels", "GET", "/rounds/{r}/barcodes/1/labels.pdf", None, ADMIN),
    (
        "sample",
        "POST",
        "/rounds/{r}/samples",
        lambda w: {"tube": w["fresh"], "resident_code": w["codes"][9]},
        SAMPLING,
    ),
    ("seal", "POST", "/rounds/{r}/tubes/{open}/seal", None, SAMPLING),
    ("tube", "GET", "/rounds/{r}/tubes/{sealed}", None, SAMPLING),
    (
        "boxes",
        "POST",
        "/boxes",
        lambda w: {"barcode": "BOX-N", "lab": "L1", "tubes": [w["loose"]]},
        SAMPLING,
    ),
    ("dispatch", "POST", "/boxes/BOX-S/dispatch", lambda w: {}, SAMPLING),
    ("receive", "POST", "/boxes/BOX-R/receive", lambda w: {}, {"admin", "L1"}),
    ("results", "POST", "/labs/L1/results", "lis", {"admin", "L1"}),
    ("upload", "GET", "/labs/L1/uploads/{upload}", None, {"admin", "L1"}),
    ("uploads", "GET", "/labs/L1/uploads", None, {"admin", "L1"}),
    ("who am i", "GET", "/tokens/me", None, ANY),
    ("list tokens", "GET", "/tokens", None, ADMIN),
    ("revoke token", "POST", "/tokens/{token}/revoke", None, ADMIN),
    ("retests", "GET", "/rounds/{r}/retests", None, {"admin", "P1", "P2"}),
    ("case", "GET", "/rounds/{r}/retests/{case}", None, {"admin", "P1"}),
    ("review", "GET", "/rounds/{r}/retests/review", None, {"admin", "L1", "L2"}),
    ("recall sheet", "GET", "/rounds/{r}/retests/{case}/recall.pdf", None, ADMIN),
    ("events", "GET", "/events?max_seconds=0.05", None, {"admin", "P1", "P2"}),
    ("advice", "GET", "/rounds/{r}/advice", None, ADMIN),
    ("progress", "GET", "/rounds/{r}/progress", None, ADMIN),
    ("report", "GET", "/rounds/{r}/report.pdf", None, ADMIN),
    ("close", "POST", "/rounds/{r}/close", None, ADMIN),
    ("code sheets", "GET", "/districts/D1/code-sheets.pdf?community=none", None, ADMIN),
    ("unsampled", "GET", "/rounds/{r}/unsampled", None, ADMIN),
    ("unsampled csv", "GET", "/rounds/{r}/unsampled.csv", None, ADMIN),
    ("unsampled counts", "GET", "/rounds/{r}/unsampled/districts", None, ADMIN),
]
# a sampler of another point, or another lab, is let in but sees none of this
FILTERED = {"retests": {"P2"}, "review": {"L2"}, "events": {"P2"}}
# another point's sampler on this point's tube / case: hidden as not found
HIDDEN = {"case": {"P2"}}


async def world(scene):
    p1 = scene.barcodes["P1"]
    await scene.fill(p1[0], [0, 1])
    await scene.post(f"/rounds/{scene.round_id}/tubes/{p1[0]}/seal", None, "P1")
    await scene.ok("/boxes", {"barcode": "BOX-S", "lab": "L1", "tubes": [p1[0]]}, "P1")
    await scene.fill(p1[1], [2, 3])
    await scene.post(f"/rounds/{scene.round_id}/tubes/{p1[1]}/seal", None, "P1")
    await scene.ok("/boxes", {"barcode": "BOX-R", "lab": "L1", "tubes": [p1[1]]}, "P1")
    await scene.ok("/boxes/BOX-R/dispatch", {}, "P1")
    await scene.fill(p1[2], [4, 5])
    await scene.ship([p1[2]], box="BOX-P")
    summary = await scene.upload_lis([f"A3,{p1[2]},30,31,26"], "PL1")
    await scene.fill(p1[3], [6])  # open
    await scene.fill(p1[4], [7])
    await scene.post(f"/rounds/{scene.round_id}/tubes/{p1[4]}/seal", None, "P1")  # loose
    cases = await scene.client.get(
        f"/rounds/{scene.round_id}/retests", headers=scene.tokens["admin"]
    )
    return {
        "r": scene.round_id,
        "sealed": p1[0],
        "open": p1[3],
        "loose": p1[4],
        "fresh": p1[5],
        "upload": summary["upload_id"],
        "case": cases.json()["items"][0]["case_id"],
        "codes": scene.codes,
        "resident": scene.codes[0],
        "token": (await scene.client.get("/tokens", headers=scene.tokens["admin"])).json()["items"][
            -1
        ]["id"],  # L2's: revoked last, by the admin
    }


@pytest.mark.parametrize(
    ("name", "method", "path", "body", "allowed"),
    ENDPOINTS,
    ids=[e[0] for e in ENDPOINTS],
)
async def test_each_role_is_allowed_or_denied_as_written(scene, name, method, path, body, allowed):
    w = await world(scene)
    url = path.format(**w)
    for role in ROLES:
        headers = {} if role == "none" else scene.tokens[role]
        kwargs = {}
        if body == "census":
            kwargs["files"] = {"file": ("c.csv", b"id_type,id_number,name,phone,district\n")}
        elif body == "lis":
            kwargs["files"] = {"file": ("p.csv", b"plate,well,sample,ORF1ab,N,IC\nQ,A1,NTC,,,\n")}
        elif body is not None:
            kwargs["json"] = body(w)
        r = await scene.client.request(method, url, headers=headers, **kwargs)
        if role == "none":
            assert (r.status_code, r.json()["type"]) == (401, "unauthenticated"), name
        elif role in HIDDEN.get(name, ()):  # not found, not forbidden: no existence oracle
            assert r.status_code == 404, (name, role, r.text)
        elif role in allowed:
            assert r.status_code not in (401, 403), (name, role, r.text)
            if role in FILTERED.get(name, ()):
                if name == "events":
                    assert "event:" not in r.text, (name, role)
                else:
                    assert r.json()["items"] == [], (name, role)
        else:
            assert (r.status_code, r.json()["type"]) == (403, "forbidden"), (name, role, r.text)


async def test_the_resident_query_needs_no_token(scene):
    r = await scene.client.post(
        "/results/query", json={"id_number": scene.ids[0], "name": scene.names[0]}
    )
    assert r.status_code == 200
