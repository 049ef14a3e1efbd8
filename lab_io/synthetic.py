"""Synthetic instrument files in every format we read, for the demo round and the
benchmarks: a plate's wells in, the bytes its instrument would export out.

Each writer follows the layout its reader's docstring describes (and FORMATS.md),
including the usual mess: QuantStudio's ``*`` header block and ``Undetermined``, the
CFX's empty first column, zero-padded wells, dye-only targets and ``NaN``, SLAN's
Chinese preamble and headers in an xlsx.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

ROWS = "ABCDEFGH"
WELLS = [f"{r}{c}" for r in ROWS for c in range(1, 13)]
TARGETS = ("ORF1ab", "N", "IC")
DYES = {"ORF1ab": "FAM", "N": "HEX", "IC": "Cy5"}


@dataclass(frozen=True, slots=True)
class Well:
    well: str  # "A1"
    sample: str  # tube barcode, or the control's name
    role: str  # "sample" | "ntc" | "pc"
    ct: dict[str, float | None]  # target -> Ct (None: no amplification)


@dataclass(frozen=True, slots=True)
class Plate:
    plate: str
    wells: Sequence[Well]


NEGATIVE = {"ORF1ab": None, "N": None, "IC": 26.4}
CONTROLS = (
    ("A1", "NTC", "ntc", {"ORF1ab": None, "N": None, "IC": None}),
    ("A2", "PC", "pc", {"ORF1ab": 28.3, "N": 29.1, "IC": 27.0}),
)


def plate_of(plate: str, samples: Sequence[tuple[str, dict[str, float | None]]]) -> Plate:
    """A 96-well plate: NTC in A1, PC in A2, then up to 94 samples in row order."""
    if len(samples) > len(WELLS) - len(CONTROLS):
        raise ValueError("a 96-well plate holds 94 samples beside its two controls")
    wells = [Well(w, s, r, dict(ct)) for w, s, r, ct in CONTROLS]
    wells += [
        Well(well, sample, "sample", ct)
        for well, (sample, ct) in zip(WELLS[len(CONTROLS) :], samples, strict=False)
    ]
    return Plate(plate, wells)


def _ct(value: float | None, none: str) -> str:
    return none if value is None else f"{value:.2f}"


def lis_csv(plates: Sequence[Plate]) -> bytes:
    lines = ["plate,well,sample,role,ORF1ab,N,IC"]
    for p in plates:
        for w in p.wells:
            cts = ",".join(_ct(w.ct.get(t), "") for t in TARGETS)
            lines.append(f"{p.plate},{w.well},{w.sample},{w.role},{cts}")
    return ("\n".join(lines) + "\n").encode()


def quantstudio(plate: Plate) -> bytes:
    """The classic 7500/QuantStudio results export, CRLF, with a trailing section."""
    task = {"sample": "UNKNOWN", "ntc": "NTC", "pc": "STANDARD"}
    lines = [
        "* Block Type = 96-Well Block (0.2mL)",
        "* Chemistry = TAQMAN",
        f"* Experiment Barcode = {plate.plate}",
        f"* Experiment Name = {plate.plate}",
        "* Instrument Type = QuantStudio(TM) 5 System",
        "* Passive Reference = ROX",
        "",
        "[Results]",
        "Well\tWell Position\tOmit\tSample Name\tTarget Name\tTask\tReporter\tQuencher\tCT"
        "\tCt Mean\tCt SD\tQuantity",
    ]
    for number, w in enumerate(plate.wells, start=1):
        for target in TARGETS:
            lines.append(
                f"{number}\t{w.well}\tfalse\t{w.sample}\t{target}\t{task[w.role]}"
                f"\t{DYES[target].upper()}\tNFQ-MGB\t{_ct(w.ct.get(target), 'Undetermined')}\t\t\t"
            )
    lines += ["", "[Amplification Data]", "Well\tCycle\tTarget Name\tRn\tDelta Rn"]
    return ("\r\n".join(lines) + "\r\n").encode()


def biorad_cfx(plate: Plate) -> tuple[str, bytes]:
    """(file name carrying the plate, CSV): dye-only rows, zero-padded wells, NaN."""
    content = {"sample": "Unkn-01", "ntc": "NTC", "pc": "Pos Ctrl"}
    lines = [
        ",Well,Fluor,Target,Content,Sample,Biological Set Name,Cq,Cq Mean,Cq Std. Dev,"
        "Starting Quantity (SQ),Log Starting Quantity,SQ Mean,SQ Std. Dev,Set Point,Well Note"
    ]
    for w in plate.wells:
        well = f"{w.well[0]}{int(w.well[1:]):02d}"
        sample = "" if w.role != "sample" else w.sample
        for target in TARGETS:
            cq = _ct(w.ct.get(target), "NaN")
            lines.append(
                f",{well},{DYES[target]},,{content[w.role]},{sample},,{cq},{cq},0.000,"
                "NaN,NaN,0.00,0.000,60,"
            )
    name = f"{plate.plate}_admin_2022-04-05 Quantification Cq Results.csv"
    return name, ("\r\n".join(lines) + "\r\n").encode()


def slan_xlsx(plate: Plate) -> bytes:
    """A SLAN-96P export: Chinese preamble, then 反应孔/目标/项目/Ct rows, in xlsx."""
    from openpyxl import Workbook

    names = {"ORF1ab": "ORF1ab", "N": "N", "IC": "内标"}
    book = Workbook()
    sheet = book.active
    for key, value in (
        ("文件名称", f"{plate.plate}.slan"),
        ("仪器型号", "SLAN-96P"),
        ("仪器编号", "H96P-0031"),
        ("条码", plate.plate),
        ("操作者", "值班检验员"),
        ("反应体系", "25 μL"),
        ("检测方法", "新型冠状病毒2019-nCoV核酸检测试剂盒(荧光PCR法)"),
    ):
        sheet.append([key, value])
    sheet.append([])
    sheet.append(["反应孔", "目标", "项目", "样本类型", "Ct"])
    kinds = {"sample": "未知", "ntc": "阴性对照", "pc": "阳性对照"}
    for w in plate.wells:
        sample = {"ntc": "阴性对照", "pc": "阳性对照"}.get(w.role, w.sample)
        for target in TARGETS:
            ct = w.ct.get(target)
            sheet.append([w.well, names[target], sample, kinds[w.role], ct if ct else "NoCt"])
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()
