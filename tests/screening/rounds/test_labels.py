"""Label sheets (issue 16, Concurrency; issue 13): bounded in size, a large range in
parts, bars drawn from python-barcode's encoding that a scanner reads back."""

from __future__ import annotations

import io
import shutil
import subprocess

import pytest
from barcode.codex import Code128
from hypothesis import given
from hypothesis import strategies as st
from pypdf import PdfReader

from reports.labels import PER_PAGE, bar_runs, code128_modules, render_label_sheet

PER_SHEET = 30


@pytest.fixture
async def big_range(app, scene):
    """A 65-label range on a service printing at most PER_SHEET labels a sheet."""
    app.state.settings = app.state.settings.model_copy(update={"max_labels_per_sheet": PER_SHEET})
    issued = await scene.ok(
        f"/rounds/{scene.round_id}/barcodes", {"sampling_point": "P2", "count": 65}
    )
    listing = await scene.client.get(
        f"/rounds/{scene.round_id}/barcodes/{issued['range_id']}", headers=scene.tokens["admin"]
    )
    return f"/rounds/{scene.round_id}/barcodes/{issued['range_id']}/labels.pdf", listing.json()


def codes_in(pdf: bytes) -> list[str]:
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)
    return [word for word in text.split() if word.isdigit() and len(word) == 14]


class TestLargeRangesComeInParts:
    async def test_a_range_larger_than_a_sheet_is_refused_naming_the_parts(self, scene, big_range):
        url, _ = big_range
        r = await scene.client.get(url, headers=scene.tokens["admin"])
        assert (r.status_code, r.json()["type"]) == (422, "too-many-labels")
        assert "part=1 to part=3" in r.json()["detail"]
        assert r.json()["errors"][0]["loc"] == ["query", "part"]

    async def test_the_parts_together_hold_every_label_once_in_order(self, scene, big_range):
        url, listing = big_range
        printed: list[str] = []
        link = f"{url}?part=1"
        for _ in range(3):
            r = await scene.client.get(link, headers=scene.tokens["admin"])
            assert r.status_code == 200, r.text
            printed += codes_in(r.content)
            link = r.headers.get("link", "").partition(">")[0].lstrip("<")
        assert link == ""  # the last part points nowhere
        assert printed == listing["barcodes"]

    async def test_a_part_past_the_end_is_refused(self, scene, big_range):
        url, _ = big_range
        r = await scene.client.get(f"{url}?part=4", headers=scene.tokens["admin"])
        assert (r.status_code, r.json()["type"]) == (422, "too-many-labels")
        r = await scene.client.get(f"{url}?part=0", headers=scene.tokens["admin"])
        assert r.status_code == 422


GS, ZBAR = shutil.which("gs"), shutil.which("zbarimg")


@pytest.mark.skipif(
    not (GS and ZBAR),
    reason="needs ghostscript and zbar-tools (apt-get install ghostscript"
    " zbar-tools) to rasterise and scan the sheet",
)
def test_every_label_scans_back_to_its_code(tmp_path):
    from pooling.barcodes import barcodes_for_range

    codes = barcodes_for_range(9_876_543, PER_PAGE)
    (tmp_path / "sheet.pdf").write_bytes(render_label_sheet(codes, caption="第1轮 · P1"))
    subprocess.run(
        [GS, "-q", "-dNOPAUSE", "-dBATCH", "-sDEVICE=pnggray", "-r300",
         f"-sOutputFile={tmp_path / 'sheet.png'}", str(tmp_path / "sheet.pdf")],
        check=True,
    )  # fmt: skip
    scanned = subprocess.run(
        [ZBAR, "-q", "--raw", str(tmp_path / "sheet.png")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert sorted(scanned) == sorted(codes)


def test_a_sheet_above_the_hard_bound_is_refused():
    with pytest.raises(ValueError, match="at most"):
        render_label_sheet(["00000000000017"] * 10_001)


@given(st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), min_size=1))
def test_the_bars_drawn_are_exactly_python_barcodes_modules(code):
    modules = code128_modules(code)
    assert modules == Code128(code, writer=None).build()[0]
    rebuilt = ["0"] * len(modules)
    for start, width in bar_runs(modules):
        assert width >= 1
        rebuilt[start : start + width] = ["1"] * width
    assert "".join(rebuilt) == modules
