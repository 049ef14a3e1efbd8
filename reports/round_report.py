"""The round report for the command center's evening hand-up (A4, Chinese).

Headline figures, a table per district and per lab, the de-pool cases and the
confirmed positives (masked: this report travels), a chart of sealed-to-result
turnaround and a chart of progress over time (tubes sealed and resulted per hour,
cumulative). Pure: figures in, PDF bytes out; set in STSong-Light; charts drawn with
reportlab's own graphics, so nothing is fetched or rasterised. Times are the
deployment's local ones (``zone``), and the report says which zone.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, tzinfo

from reportlab.graphics.charts.barcharts import VerticalBarChart
from reportlab.graphics.charts.legends import Legend
from reportlab.graphics.charts.linecharts import HorizontalLineChart
from reportlab.graphics.shapes import Drawing, String
from reportlab.lib import colors
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.platypus import Paragraph, Spacer, Table, TableStyle

from reports.pdf import a4_document, ensure_cjk_font, local_time, zone_label


@dataclass(frozen=True, slots=True)
class Row:
    """One line of a table: a label and its figures, already formatted."""

    cells: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RoundReport:
    round_name: str
    generated_at: datetime
    zone: tzinfo
    headline: Sequence[tuple[str, str]]  # (label, figure)
    districts: Sequence[Row]
    labs: Sequence[Row]
    cases: Sequence[Row]
    positives: Sequence[Row]
    turnaround: Sequence[tuple[float, int]]  # (hours, tubes) per bucket
    hourly: Sequence[tuple[str, int, int]]  # (local hour label, sealed so far, resulted so far)
    notes: Sequence[str] = field(default_factory=tuple)


DISTRICT_HEAD = (
    "区 District",
    "人口 Population",
    "已采人数 People",
    "覆盖 Coverage",
    "已检管 Tested",
    "阳性混管 Positive pools",
    "确诊 Confirmed",
)
LAB_HEAD = (
    "实验室 Lab",
    "日产能 Capacity",
    "已收 Received",
    "已检 Tested",
    "负荷 Load",
    "阳性 混管/单管 Positive pools/singles",
    "收样到出结果 Received-to-result p50/p95 h",
)
CASE_HEAD = (
    "案 Case",
    "混管 Pool tube",
    "采样点 Point",
    "状态 Status",
    "人数 Members",
    "时长 Age h",
    "不一致 Discordant",
)
POSITIVE_HEAD = (
    "居民码 Code",
    "姓名 Name",
    "证件 ID",
    "采样点 Point",
    "单管 Tube",
    "报告 Reported",
)


def _table(head: Sequence[str], rows: Sequence[Row], font: str, widths: list[float]) -> Table:
    style = ParagraphStyle("cell", fontName=font, fontSize=7.5, leading=9)
    data = [[Paragraph(h, style) for h in head]]
    data += [[Paragraph(c, style) for c in row.cells] for row in rows]
    if not rows:
        data.append([Paragraph("(无 none)", style)] + [""] * (len(head) - 1))
    table = Table(data, colWidths=widths, repeatRows=1)
    table.setStyle(
        TableStyle(
            [
                ("GRID", (0, 0), (-1, -1), 0.3, colors.grey),
                ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8eef7")),
                ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
            ]
        )
    )
    return table


def _turnaround_chart(buckets: Sequence[tuple[float, int]], font: str) -> Drawing:
    drawing = Drawing(170 * mm, 60 * mm)
    chart = VerticalBarChart()
    chart.x, chart.y, chart.width, chart.height = 12 * mm, 10 * mm, 150 * mm, 42 * mm
    values = [n for _, n in buckets] or [0]
    chart.data = [values]
    labels = [f"{h:g}" for h, _ in buckets] or ["-"]
    step = max(1, len(labels) // 12)
    chart.categoryAxis.categoryNames = [
        lab if i % step == 0 else "" for i, lab in enumerate(labels)
    ]
    chart.categoryAxis.labels.fontSize = 6
    chart.valueAxis.labels.fontSize = 6
    chart.valueAxis.valueMin = 0
    chart.bars[0].fillColor = colors.HexColor("#3b6fb6")
    drawing.add(chart)
    drawing.add(
        String(
            12 * mm,
            55 * mm,
            "封管到出结果 小时 Sealed-to-result, hours (tubes)",
            fontName=font,
            fontSize=8,
        )
    )
    return drawing


def _progress_chart(hourly: Sequence[tuple[str, int, int]], font: str, zone: str) -> Drawing:
    drawing = Drawing(170 * mm, 65 * mm)
    chart = HorizontalLineChart()
    chart.x, chart.y, chart.width, chart.height = 14 * mm, 10 * mm, 130 * mm, 44 * mm
    sealed = [s for _, s, _ in hourly] or [0]
    resulted = [r for _, _, r in hourly] or [0]
    chart.data = [sealed, resulted]
    labels = [h for h, _, _ in hourly] or ["-"]
    step = max(1, len(labels) // 10)
    chart.categoryAxis.categoryNames = [
        lab if i % step == 0 else "" for i, lab in enumerate(labels)
    ]
    chart.categoryAxis.labels.fontSize = 6
    chart.categoryAxis.labels.fontName = font  # hours read "24日08时"
    chart.valueAxis.labels.fontSize = 6
    chart.valueAxis.valueMin = 0
    chart.lines[0].strokeColor = colors.HexColor("#3b6fb6")
    chart.lines[1].strokeColor = colors.HexColor("#d9822b")
    drawing.add(chart)
    legend = Legend()
    legend.x, legend.y = 148 * mm, 50 * mm
    legend.fontName, legend.fontSize = font, 7
    legend.colorNamePairs = [
        (colors.HexColor("#3b6fb6"), "已封管 sealed"),
        (colors.HexColor("#d9822b"), "已出结果 resulted"),
    ]
    drawing.add(legend)
    drawing.add(
        String(
            14 * mm,
            60 * mm,
            f"进度 累计管数 Progress, cumulative tubes per hour ({zone})",
            fontName=font,
            fontSize=8,
        )
    )
    return drawing


def render_round_report(report: RoundReport) -> bytes:
    font = ensure_cjk_font()
    title = ParagraphStyle("title", fontName=font, fontSize=16, leading=20)
    heading = ParagraphStyle("heading", fontName=font, fontSize=11, leading=15, spaceBefore=6)
    body = ParagraphStyle("body", fontName=font, fontSize=9, leading=12)
    buffer = io.BytesIO()
    doc = a4_document(buffer, title=f"round report: {report.round_name}", margin_mm=14)
    width = doc.width
    headline = Table(
        [[Paragraph(label, body), Paragraph(value, body)] for label, value in report.headline],
        colWidths=[width * 0.45, width * 0.55],
    )
    headline.setStyle(TableStyle([("LINEBELOW", (0, 0), (-1, -1), 0.2, colors.lightgrey)]))
    col7 = [width / 7] * 7
    story = [
        Paragraph(f"全员核酸筛查轮次报告 Round report: {report.round_name}", title),
        Paragraph(f"生成 Generated {local_time(report.generated_at, report.zone)}", body),
        Paragraph(f"本报告时间均为 {zone_label(report.zone, report.generated_at)} 当地时间", body),
        Spacer(1, 4 * mm),
        headline,
        Paragraph("分区 Districts", heading),
        _table(DISTRICT_HEAD, report.districts, font, col7),
        Paragraph("实验室 Labs", heading),
        _table(LAB_HEAD, report.labs, font, col7),
        Paragraph("周转 Turnaround", heading),
        _turnaround_chart(report.turnaround, font),
        Paragraph("进度 Progress over time", heading),
        _progress_chart(report.hourly, font, zone_label(report.zone, report.generated_at)),
        Paragraph("混管阳性复核 De-pool cases", heading),
        _table(CASE_HEAD, report.cases, font, col7),
        Paragraph("确诊阳性 Confirmed positives (masked)", heading),
        _table(POSITIVE_HEAD, report.positives, font, [width / 6] * 6),
        *[Paragraph(note, body) for note in report.notes],
    ]
    doc.build(story)
    return buffer.getvalue()
