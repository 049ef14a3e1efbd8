"""The re-sampling squad's recall sheet for one de-pool case (A4, Chinese).

The one document that shows members' full names and phones: the squad must find and
call each person. Each row: resident code, full name (with the home address under
it, for people without phones), phone, where the pooled tube was
taken (the sampling point's address, not the registered one: DOMAIN.md step 4), the
member's status and their single tube once re-sampled. Set in STSong-Light.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.platypus import Paragraph, Spacer, Table, TableStyle

from reports.pdf import a4_document, ensure_cjk_font

STATUS_ZH = {
    "to-recall": "待召回",
    "resampled": "已单采",
    "negative": "阴性",
    "positive": "阳性",
    "invalid": "无效,需再采",
}
RESULT_ZH = {"positive": "阳性", "suspicious": "可疑"}


@dataclass(frozen=True, slots=True)
class RecallMember:
    resident_code: str
    name: str
    phone: str | None
    status: str
    single_tube: str | None
    home: str | None = None
    """The registered home address: the squad finds people without phones there."""


@dataclass(frozen=True, slots=True)
class RecallCase:
    case_id: int
    round_name: str
    pool_tube: str
    pool_result: str
    sampling_point: str
    address: str
    lab: str | None
    opened_at: datetime


def render_recall_sheet(
    case: RecallCase, members: Sequence[RecallMember], *, printed_at: datetime
) -> bytes:
    font = ensure_cjk_font()
    title = ParagraphStyle("title", fontName=font, fontSize=16, leading=20)
    body = ParagraphStyle("body", fontName=font, fontSize=10, leading=14)
    cell = ParagraphStyle("cell", fontName=font, fontSize=9, leading=11)
    buffer = io.BytesIO()
    doc = a4_document(buffer, title=f"recall sheet, case {case.case_id}")
    facts = [
        f"轮次 Round: {case.round_name}",
        f"混管 Pool tube: {case.pool_tube}  结果 Result: {RESULT_ZH.get(case.pool_result, '')}"
        f" ({case.pool_result})",
        f"采样点 Sampling point: {case.sampling_point}  地址 Address: {case.address}",
        f"检测机构 Lab: {case.lab or '-'}  开案 Opened: {case.opened_at:%Y-%m-%d %H:%M %Z}",
        f"打印 Printed: {printed_at:%Y-%m-%d %H:%M %Z}  共 {len(members)} 人",
    ]
    rows: list[list[object]] = [
        [
            Paragraph(h, cell)
            for h in (
                "#",
                "居民码 Code",
                "姓名 Name",
                "电话 Phone",
                "状态 Status",
                "单管 Single tube",
            )
        ]
    ]
    for number, m in enumerate(members, start=1):
        rows.append(
            [
                str(number),
                Paragraph(m.resident_code, cell),
                Paragraph(escape(m.name) + (f"<br/>{escape(m.home)}" if m.home else ""), cell),
                Paragraph(m.phone or "-", cell),
                Paragraph(f"{STATUS_ZH.get(m.status, m.status)}", cell),
                Paragraph(m.single_tube or "", cell),
            ]
        )
    table = Table(
        rows,
        colWidths=[8 * mm, 38 * mm, 30 * mm, 32 * mm, 28 * mm, 44 * mm],
        repeatRows=1,
    )
    table.setStyle(
        TableStyle(
            [
                ("GRID", (0, 0), (-1, -1), 0.4, colors.grey),
                ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8eef7")),
                ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
                ("FONTNAME", (0, 0), (-1, -1), font),
            ]
        )
    )
    story = [
        Paragraph(f"混管阳性召回单 Recall sheet — case {case.case_id}", title),
        Spacer(1, 4 * mm),
        *[Paragraph(line, body) for line in facts],
        Spacer(1, 4 * mm),
        Paragraph("就地管控,逐一单采复核。 Isolate in place; swab each person alone.", body),
        Spacer(1, 3 * mm),
        table,
        Spacer(1, 5 * mm),
        Paragraph("本单含个人信息,仅限复核队使用,用后销毁。 Personal data: squad use only.", body),
    ]
    doc.build(story)
    return buffer.getvalue()
