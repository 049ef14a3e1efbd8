"""Odd upload inputs that gave a 500 (issue 16): each is a 4xx problem document naming
what is wrong, and nothing of a refused upload is kept. Also: one trailing blank line
keeps a lis-csv on the fast path and lists a bad line once; kits the formats cannot
read are refused when a lab is created, and an admin can change a lab's kit."""

from __future__ import annotations

import io
import zipfile

import pytest
from openpyxl import Workbook
from sqlalchemy import text

from tests.screening.results.test_uploads import lis, received_tubes, upload

PROBLEM = "application/problem+json"


def malformed_xlsx() -> bytes:
    """A real workbook whose sheet XML is cut short."""
    buffer = io.BytesIO()
    book = Workbook()
    book.active.append(["SLAN-96P"])
    book.active.append(["反应孔", "目标", "项目", "Ct"])
    book.save(buffer)
    broken = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(buffer.getvalue())) as source,
        zipfile.ZipFile(broken, "w") as target,
    ):
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename.endswith("sheet1.xml"):
                data = data[: len(data) // 2] + b"<row r=<<"
            target.writestr(item, data)
    return broken.getvalue()


def long_cell_csv() -> bytes:
    return (
        b"plate,well,sample,role,ORF1ab,N,IC\nP,A1,NTC,ntc,,,\nP,A2,PC,pc,28,29,27\n"
        b'P,A3,"' + b"9" * 131_073 + b'",sample,,,27\n'
    )


def ragged_long_cell_csv() -> bytes:
    # ragged (COPY refuses it), so the Python reader meets the long cell
    return b"plate,well,sample,role,ORF1ab,N,IC\nP,A1,NTC,ntc,,,\nP,A2,x," + b"y" * 131_073 + b"\n"


ODD = [
    ("a NUL byte past the first 64 KiB", lambda: lis([]).encode() + b"\n" * 70_000 + b"\x00", {}),
    ("a NUL byte in a lis-csv row", lambda: lis(["PL1,A3,\x00,sample,,,27"]).encode(), {}),
    ("a CSV cell over 131,072 characters", long_cell_csv, {}),
    ("a long cell in a ragged CSV", ragged_long_cell_csv, {}),
    ("an xlsx with malformed XML", malformed_xlsx, {}),
    ("a plate id over 100 characters in the field", lambda: lis([]).encode(), {"plate": "P" * 101}),
]


@pytest.mark.parametrize(("make", "form"), [(m, f) for _, m, f in ODD], ids=[n for n, _, _ in ODD])
async def test_an_odd_upload_is_a_problem_document_and_keeps_nothing(scene, db_session, make, form):
    r = await upload(scene, make(), name="odd.csv", **form)
    assert 400 <= r.status_code < 500, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    assert r.json()["detail"]
    assert await db_session.scalar(text("SELECT count(*) FROM uploads")) == 0


async def test_a_file_name_over_300_characters_is_refused(scene, db_session):
    r = await upload(scene, lis([]), name="x" * 301 + ".csv")
    assert (r.status_code, r.json()["type"]) == (422, "invalid-request")
    assert "300" in r.json()["detail"]
    assert await db_session.scalar(text("SELECT count(*) FROM uploads")) == 0


async def test_a_plate_id_over_100_characters_in_the_file_is_a_rejected_row(scene):
    t = await received_tubes(scene, 1)
    long_plate = "Q" * 101
    content = lis([f"{long_plate},A3,{t[0]},sample,,,27", f"PL1,A4,{t[0]},sample,,,27"])
    r = await upload(scene, content)
    assert r.status_code == 200, r.text
    [row] = r.json()["rejected"]
    assert (row["line"], row["type"]) == (4, "bad-plate")


async def test_one_trailing_blank_line_keeps_the_fast_path_and_lists_a_bad_line_once(scene):
    t = await received_tubes(scene, 1)
    content = lis([f"PL1,A3,{t[0]},sample,,,27", "PL1,Z99,NOPE,sample,,,27"]) + "\n"
    body = (await upload(scene, content)).json()
    assert body["rows"] == 4  # wells, as the fast path counts them (not readings)
    assert [(r["line"], r["type"]) for r in body["rejected"]] == [(5, "bad-well")]


async def test_a_ragged_file_on_the_slow_path_lists_a_bad_line_once(scene):
    t = await received_tubes(scene, 1)
    content = lis([f"PL1,A3,{t[0]},sample,,,27", "PL1,Z99,NOPE,sample,,,27,extra"])
    body = (await upload(scene, content)).json()
    assert body["rows"] == 4
    assert [(r["line"], r["type"]) for r in body["rejected"]] == [(5, "bad-well")]


class TestKits:
    async def test_a_kit_whose_targets_cannot_be_read_is_refused(self, scene):
        for kit in (
            {"targets": ["XYZ"]},
            {"targets": ["ORF1ab", "N"], "control_target": "GAPDH"},
            {"dyes": {"FAM": "XYZ"}},
            {"targets": ["N", "N gene"]},
        ):
            r = await scene.post(
                "/labs", {"code": "LX", "name": "实验室X", "daily_capacity_tubes": 1, "kit": kit}
            )
            assert (r.status_code, r.json()["type"]) == (422, "invalid-request"), kit
            assert r.json()["errors"][0]["loc"][:2] == ["body", "kit"]

    async def test_an_admin_changes_a_labs_kit(self, scene):
        kit = {"targets": ["ORF1ab", "N", "E"], "positive_ct_max": 38.0}
        r = await scene.client.patch("/labs/L1", json={"kit": kit}, headers=scene.tokens["admin"])
        assert r.status_code == 200, r.text
        assert r.json()["kit"]["targets"] == ["ORF1ab", "N", "E"]
        assert r.json()["kit"]["positive_ct_max"] == 38.0
        bad = await scene.client.patch(
            "/labs/L1", json={"kit": {"targets": ["XYZ"]}}, headers=scene.tokens["admin"]
        )
        assert bad.status_code == 422
        by_lab = await scene.client.patch(
            "/labs/L1", json={"name": "改名"}, headers=scene.tokens["L1"]
        )
        assert by_lab.status_code == 403
        missing = await scene.client.patch(
            "/labs/NOPE", json={"name": "x"}, headers=scene.tokens["admin"]
        )
        assert missing.status_code == 404

    async def test_an_upload_for_a_lab_with_an_unreadable_stored_kit_is_a_409(
        self, scene, db_session
    ):
        await db_session.execute(
            text("""UPDATE labs SET kit = '{"targets": ["XYZ"]}' WHERE code = 'L1'""")
        )
        r = await upload(scene, lis([]))
        assert (r.status_code, r.json()["type"]) == (409, "unreadable-kit")
        assert "PATCH /labs/L1" in r.json()["detail"]
