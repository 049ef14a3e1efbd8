"""The four instrument formats (FORMATS.md): golden fixtures read to the expected
readings, format detection, files that cannot be read, and a round-trip property:
readings written out in any format, encoding and line ending read back the same."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openpyxl import Workbook

from lab_io.formats import READERS, UnreadableFile, detect_format, plate_from_filename
from lab_io.formats.common import normalize_well, parse_ct

FIXTURES = Path(__file__).parent / "fixtures"
DYES = {"FAM": "ORF1ab", "VIC": "N", "HEX": "N", "CY5": "IC"}
T0, T1 = "11000000000017", "11000000000025"


def fixture(name: str) -> bytes:
    return (
        (FIXTURES / name).read_bytes().replace(b"{t0}", T0.encode()).replace(b"{t1}", T1.encode())
    )


def read(fmt: str, data: bytes, dyes: dict[str, str] | None = None) -> list[tuple]:
    return [
        (r.plate, r.well, r.sample, r.role, r.target, r.ct)
        for r in READERS[fmt](io.BytesIO(data), kit_dyes=DYES if dyes is None else dyes)
    ]


def wells(readings: list[tuple]) -> dict[str, dict[str, str]]:
    """well -> {target: ct}"""
    out: dict[str, dict[str, str]] = {}
    for _plate, well, _sample, _role, target, ct in readings:
        out.setdefault(well, {})[target] = ct
    return out


class TestGoldenFixtures:
    def test_quantstudio_7500_gbk_crlf_with_cyrillic_ct_and_omitted_wells(self):
        rows = read("quantstudio", fixture("quantstudio_7500.txt"))
        # [Sample Setup] and [Amplification Data] are not read; A5 is omitted
        assert len(rows) == 12
        assert {r[0] for r in rows} == {"QS-0405-A"}  # barcode NA: the experiment name
        assert [(r[1], r[3]) for r in rows[::3]] == [
            ("A1", "ntc"),
            ("A2", "pc"),
            ("A3", "sample"),  # from the well number "3.0"
            ("A4", "sample"),
        ]
        assert wells(rows)["A4"] == {"ORF1ab": "31.2", "N": "32.07", "IC": "26.4"}
        assert rows[6][2] == T0

    def test_quantstudio_design_and_analysis_csv(self):
        rows = read("quantstudio", fixture("quantstudio_design_analysis.csv"))
        assert {r[0] for r in rows} == {"QSDA-0001"}
        assert sorted(wells(rows)) == ["A1", "B2", "P24"]  # A01 -> A1, 384-well P24
        assert [r[3] for r in rows[::3]] == ["ntc", "pc", "sample"]
        assert wells(rows)["P24"] == {"ORF1ab": "N/A", "N": "-", "IC": "24.7"}

    def test_biorad_cfx_maps_dyes_through_the_kit(self):
        rows = read("biorad-cfx", fixture("biorad_cfx.csv"))
        assert {r[0] for r in rows} == {None}  # the file names no plate
        assert wells(rows)["A4"] == {"ORF1ab": "NaN", "N": "36.80", "IC": "25.30"}
        assert [r[3] for r in rows[::3]] == ["ntc", "pc", "sample", "sample"]

    def test_biorad_cfx_with_another_dye_map(self):
        rows = read("biorad-cfx", fixture("biorad_cfx.csv"), {"FAM": "N", "HEX": "ORF1ab"})
        assert wells(rows)["A4"] == {"N": "NaN", "ORF1ab": "36.80", "CY5": "25.30"}

    def test_slan_gbk_csv_names_its_plate_in_the_preamble(self):
        rows = read("slan-96p", fixture("slan_96p.csv"))
        assert {r[0] for r in rows} == {"SLAN-PLATE-7"}
        assert [(r[1], r[2], r[3]) for r in rows[::3]] == [
            ("A1", "阴性对照", "ntc"),
            ("A2", "阳性对照", "pc"),
            ("A3", T0, "sample"),
        ]
        assert wells(rows)["A3"] == {"ORF1ab": "", "N": "", "IC": "26.66"}

    def test_slan_xlsx_reads_like_its_csv_copy(self):
        text = fixture("slan_96p.csv").decode("gbk")
        book = Workbook()
        sheet = book.active
        for row in csv.reader(io.StringIO(text)):
            sheet.append([float(v) if _number(v) else v for v in row])
        buffer = io.BytesIO()
        book.save(buffer)
        from_xlsx = read("slan-96p", buffer.getvalue())
        from_csv = read("slan-96p", fixture("slan_96p.csv"))
        assert [r[:5] for r in from_xlsx] == [r[:5] for r in from_csv]
        assert [parse_ct(r[5]) for r in from_xlsx] == [parse_ct(r[5]) for r in from_csv]

    @pytest.mark.parametrize(
        ("name", "fmt"),
        [
            ("quantstudio_7500.txt", "quantstudio"),
            ("quantstudio_design_analysis.csv", "quantstudio"),
            ("biorad_cfx.csv", "biorad-cfx"),
            ("slan_96p.csv", "slan-96p"),
        ],
    )
    def test_each_fixture_is_detected(self, name, fmt):
        assert detect_format(fixture(name)[:65536], "upload.csv") == fmt

    def test_lis_csv_and_unknown_files_are_detected(self):
        assert detect_format(b"plate,well,sample,ORF1ab,N,IC\nP,A1,x,,,\n", None) == "lis-csv"
        assert detect_format(b"name,age\nbob,3\n", None) is None
        assert detect_format(b"PK\x03\x04rest-of-a-zip", "x.xlsx") == "slan-96p"


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


class TestPlateFromFilename:
    @pytest.mark.parametrize(
        ("name", "plate"),
        [
            ("P2204050017_2022-04-05 Quantification Cq Results.csv", "P2204050017"),
            ("C:\\runs\\PL-9_admin_2022 Quantification Cq Results.csv", "PL-9"),
            ("Quantification Cq Results.csv", None),
            ("P1_results.csv", None),
            (None, None),
        ],
    )
    def test_the_plate_comes_from_a_cfx_file_name(self, name, plate):
        assert plate_from_filename(name) == plate


class TestUnreadable:
    @pytest.mark.parametrize("fmt", ["quantstudio", "biorad-cfx", "slan-96p", "lis-csv"])
    @pytest.mark.parametrize(
        "data",
        [b"", b"\x00\x01\x02binary\xff\xfe" * 50, b"just,a,table\n1,2,3\n", b"PK\x03\x04junk"],
        ids=["empty", "binary", "other-table", "broken-zip"],
    )
    def test_a_file_without_its_header_is_unreadable(self, fmt, data):
        if fmt != "slan-96p" and data.startswith(b"PK"):
            data = b"PK,zip\n"
        with pytest.raises(UnreadableFile):
            list(READERS[fmt](io.BytesIO(data), kit_dyes=DYES))

    def test_a_quantstudio_results_section_without_ct_is_unreadable(self):
        data = b"* Experiment Barcode = P1\n[Results]\nWell\tSample Name\n1\tx\n"
        with pytest.raises(UnreadableFile, match="line 3"):
            list(READERS["quantstudio"](io.BytesIO(data), kit_dyes=DYES))


# ---- round trip: any readings, written in any format, read back the same ------------

TARGET_SPELLINGS = {
    "ORF1ab": ["ORF1ab", "ORF1ab gene", "ORF", "orf1ab"],
    "N": ["N", "N gene", "N-gene"],
    "IC": ["IC", "RP", "RNaseP", "Internal Control", "内标"],
}
NO_CT = ["Undetermined", "NaN", "N/A", "No Ct", "-", "0", ""]
ROLE_NAMES = {
    "ntc": ["NTC", "NC", "NEG", "Neg Ctrl", "阴性对照"],
    "pc": ["PC", "POS", "Pos Ctrl", "阳性对照"],
}

cts = st.one_of(
    st.sampled_from(NO_CT),
    st.floats(min_value=10, max_value=45, allow_nan=False).map(lambda v: f"{v:.2f}"),
)


@st.composite
def well_rows(draw):
    """Distinct wells, each a sample (barcode) or a control, with Ct per target."""
    positions = draw(
        st.lists(
            st.tuples(st.sampled_from("ABCDEFGH"), st.integers(1, 12)),
            min_size=1,
            max_size=12,
            unique=True,
        )
    )
    rows = []
    for row, column in positions:
        role = draw(st.sampled_from(["sample", "sample", "ntc", "pc"]))
        name = (
            draw(st.from_regex(r"\A[0-9]{14}\Z"))
            if role == "sample"
            else draw(st.sampled_from(ROLE_NAMES[role]))
        )
        well = f"{row}{column:02d}" if draw(st.booleans()) else f"{row}{column}"
        for target, spellings in TARGET_SPELLINGS.items():
            rows.append((well, name, role, target, draw(st.sampled_from(spellings)), draw(cts)))
    return rows


def render_quantstudio(rows, plate):
    lines = [f"* Experiment Barcode = {plate}", "* Block Type = 96-Well Block", "", "[Results]"]
    lines.append("Well\tWell Position\tOmit\tSample Name\tTarget Name\tTask\tReporter\tCT")
    task = {"sample": "UNKNOWN", "ntc": "NTC", "pc": "STANDARD"}
    for well, name, role, _t, spelled, ct in rows:
        lines.append(f"1\t{well}\tfalse\t{name}\t{spelled}\t{task[role]}\tFAM\t{ct}")
    return lines


def render_design_analysis(rows, plate):
    lines = [f"# Barcode: {plate}", '"[Target Call]"', '"Well Position","Sample","Target","Cq"']
    lines += [f'"{w}","{n}","{s}","{c}"' for w, n, _r, _t, s, c in rows]
    return lines


def render_biorad(rows, plate):
    content = {"sample": "Unkn-01", "ntc": "NTC", "pc": "Pos Ctrl"}
    lines = [",Well,Fluor,Target,Content,Sample,Biological Set Name,Cq,Cq Mean"]
    lines += [f",{w},FAM,{s},{content[r]},{n},,{c},0" for w, n, r, _t, s, c in rows]
    return lines


def render_slan(rows, plate):
    lines = ["仪器型号,SLAN-96P", f"条码,{plate}"] + [f"备注{k}," for k in range(11)]
    lines.append("反应孔,目标,项目,Ct")
    lines += [f"{w},{s},{n},{c}" for w, n, _r, _t, s, c in rows]
    return lines


RENDERERS = {
    "quantstudio": [render_quantstudio, render_design_analysis],
    "biorad-cfx": [render_biorad],
    "slan-96p": [render_slan],
}
ENCODINGS = ["utf-8", "utf-8-sig", "gb18030"]


@settings(max_examples=150, deadline=None)
@given(
    rows=well_rows(),
    fmt_and_renderer=st.sampled_from([(f, r) for f, rs in RENDERERS.items() for r in rs]),
    encoding=st.sampled_from(ENCODINGS),
    newline=st.sampled_from(["\n", "\r\n"]),
    plate=st.from_regex(r"\A[A-Z]{1,3}[0-9]{1,8}\Z"),
)
def test_readings_round_trip_through_every_format(rows, fmt_and_renderer, encoding, newline, plate):
    fmt, render = fmt_and_renderer
    data = newline.join(render(rows, plate)).encode(encoding) + newline.encode()
    assert detect_format(data[:65536], "upload") == fmt
    got = read(fmt, data)
    expected = [
        (None if fmt == "biorad-cfx" else plate, normalize_well(w), n, r, t, c)
        for w, n, r, t, _s, c in rows
    ]
    assert got == expected
