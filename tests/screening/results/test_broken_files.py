"""A corpus of broken files (issue 6, Abuse): each gets a clean 4xx problem with a
reason, or a 200 whose bad rows are each rejected, and the database keeps nothing of
a refused upload."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from openpyxl import Workbook
from sqlalchemy import text

FIXTURES = Path(__file__).parents[2] / "lab_io" / "fixtures"


def utf16(text_: str) -> bytes:
    return text_.encode("utf-16")


def zip_not_a_workbook() -> bytes:
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("hello.txt", "not a workbook")
    return buffer.getvalue()


def empty_workbook() -> bytes:
    buffer = io.BytesIO()
    Workbook().save(buffer)
    return buffer.getvalue()


REFUSED = [
    ("empty", b"", None),
    ("binary", os.urandom(4096) + b"\x00" * 10, None),
    ("utf-16", utf16("plate,well,sample,ORF1ab,N,IC\nP,A1,NTC,,,\n"), None),
    ("header only", b"plate,well,sample,role,ORF1ab,N,IC\n", None),
    ("header only, CRLF and BOM", b"\xef\xbb\xbfplate,well,sample,ORF1ab,N,IC\r\n", None),
    ("one long line", b"x" * 5_000_000, None),
    ("latin-1 junk", "plate;wéll;sämple\n".encode("latin-1") + b"\xff\xfe\xfa" * 100, None),
    (
        "truncated quantstudio header",
        (FIXTURES / "quantstudio_7500.txt").read_bytes()[:200],
        "quantstudio",
    ),
    ("a zip, not a workbook", zip_not_a_workbook(), None),
    ("an empty workbook", empty_workbook(), None),
    ("a table of something else", b"name,age\nbob,3\n", None),
    ("csv named as cfx", b"a,b\n1,2\n", "biorad-cfx"),
]


@pytest.mark.parametrize(
    ("data", "fmt"), [(d, f) for _, d, f in REFUSED], ids=[n for n, _, _ in REFUSED]
)
async def test_an_unreadable_file_is_refused_with_a_reason_and_nothing_kept(
    scene, db_session, data, fmt
):
    form = {"format": fmt} if fmt else {}
    r = await scene.client.post(
        "/labs/L1/results",
        headers=scene.tokens["L1"],
        data=form,
        files={"file": ("upload.bin", data)},
    )
    assert r.status_code == 422, r.text
    body = r.json()
    assert r.headers["content-type"].startswith("application/problem+json")
    assert body["type"] == "unreadable-file" and len(body["detail"]) > 10
    kept = await db_session.execute(
        text("SELECT (SELECT count(*) FROM uploads), (SELECT count(*) FROM results)")
    )
    assert tuple(kept.one()) == (0, 0)


async def test_a_body_of_100_mb_is_refused_before_it_is_read(scene, db_session):
    r = await scene.client.post(
        "/labs/L1/results",
        headers=scene.tokens["L1"],
        files={"file": ("huge.csv", b"x" * 100_000_000)},
    )
    assert (r.status_code, r.json()["type"]) == (413, "payload-too-large")
    assert await db_session.scalar(text("SELECT count(*) FROM uploads")) == 0


async def test_formulas_in_cells_are_rejected_rows_never_stored(scene, db_session):
    tube = scene.barcodes["P1"][0]
    await scene.fill(tube, [0, 1])
    await scene.ship([tube], box="B")
    content = "\n".join(
        [
            "plate,well,sample,role,ORF1ab,N,IC",
            "P,A1,NTC,ntc,,,",
            "P,A2,PC,pc,28,29,27",
            "P,A3,\"=cmd|' /C calc'!A0\",sample,,,26",
            f"P,A4,{tube},sample,=1+1,,26",
            "P,A5,@SUM(A1:A2),sample,,,26",
        ]
    )
    r = await scene.client.post(
        "/labs/L1/results",
        headers=scene.tokens["L1"],
        files={"file": ("f.csv", content.encode())},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert [(x["line"], x["type"]) for x in body["rejected"]] == [
        (4, "unknown-tube"),
        (5, "bad-ct"),
        (6, "unknown-tube"),
    ]
    assert await db_session.scalar(text("SELECT count(*) FROM results")) == 0
    state = await db_session.scalar(text("SELECT state FROM tubes WHERE barcode = :b"), {"b": tube})
    assert state == "received"


async def test_a_truncated_export_keeps_its_whole_rows_and_rejects_the_cut_one(scene):
    t = scene.barcodes["P1"][:2]
    for k, tube in enumerate(t):
        await scene.fill(tube, [k])
    await scene.ship(t, box="B")
    content = (
        "plate,well,sample,role,ORF1ab,N,IC\nP,A1,NTC,ntc,,,\nP,A2,PC,pc,28,29,27\n"
        f"P,A3,{t[0]},sample,,,26\nP,A4,{t[1]},sample,,,2"
    )
    cut = content[: content.rindex(",") - 3]  # mid-row: the last row loses its IC
    r = await scene.client.post(
        "/labs/L1/results",
        headers=scene.tokens["L1"],
        files={"file": ("cut.csv", cut.encode())},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["tubes"]["negative"] == 1
    assert body["rejected_total"] + body["tubes"]["invalid"] == 1  # the cut row


@pytest.mark.parametrize(
    "data",
    [b"", os.urandom(2048) + b"\x00", b"id_type,id_number\n", utf16("id_type,id_number,name\n")],
    ids=["empty", "binary", "header missing columns", "utf-16"],
)
async def test_a_broken_census_file_is_refused_and_registers_no_one(scene, db_session, data):
    before = await db_session.scalar(text("SELECT count(*) FROM residents"))
    r = await scene.client.post(
        "/residents/import",
        headers=scene.tokens["admin"],
        files={"file": ("census.csv", data)},
    )
    assert 400 <= r.status_code < 500, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["detail"]
    assert await db_session.scalar(text("SELECT count(*) FROM residents")) == before
