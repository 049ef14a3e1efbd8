"""Code sheets: A4 pages of cut-out cards, one per resident, for a community worker to
hand to people without a phone (the elderly, small children). Each card: full name
(the worker must hand it to the right person), masked ID number, community, the
resident code as a large QR (error correction Q, about 38 mm: a station scanner reads
it from paper folded in a pocket) and the code in print for typing by hand.

Eight cards a page (2 x 4, 90 x 64 mm each) drawn straight onto the canvas; text in
STSong-Light like every PDF of ours, so it extracts back as Unicode.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from reportlab.graphics import renderPDF
from reportlab.graphics.barcode.qr import QrCodeWidget
from reportlab.graphics.shapes import Drawing
from reportlab.lib.colors import HexColor, black
from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.pdfgen.canvas import Canvas

from reports.pdf import ensure_cjk_font

COLUMNS, ROWS = 2, 4
CARD_W, CARD_H = 90 * mm, 64 * mm
QR_SIZE = 38 * mm
MARGIN_X = (A4[0] - COLUMNS * CARD_W) / 2
MARGIN_TOP = 18 * mm


@dataclass(frozen=True, slots=True)
class CodeCard:
    resident_code: str
    name: str
    id_masked: str
    community: str | None


def _fit(canvas: Canvas, text: str, font: str, size: float, width: float) -> float:
    """The largest size up to ``size`` at which ``text`` fits ``width``."""
    while size > 6 and canvas.stringWidth(text, font, size) > width:
        size -= 0.5
    return size


def _card(canvas: Canvas, card: CodeCard, x: float, y: float, font: str) -> None:
    """One card with its lower-left corner at (x, y)."""
    canvas.setStrokeColor(HexColor("#9aa7b4"))
    canvas.setDash(3, 3)
    canvas.rect(x, y, CARD_W, CARD_H)
    canvas.setDash()
    widget = QrCodeWidget(card.resident_code, barLevel="Q", barBorder=2)
    left, bottom, right, top = widget.getBounds()
    drawing = Drawing(
        QR_SIZE,
        QR_SIZE,
        transform=[QR_SIZE / (right - left), 0, 0, QR_SIZE / (top - bottom), 0, 0],
    )
    drawing.add(widget)
    renderPDF.draw(drawing, canvas, x + CARD_W - QR_SIZE - 4 * mm, y + (CARD_H - QR_SIZE) / 2)
    text_width = CARD_W - QR_SIZE - 12 * mm
    canvas.setFillColor(black)
    size = _fit(canvas, card.name, font, 18, text_width)
    canvas.setFont(font, size)
    canvas.drawString(x + 5 * mm, y + CARD_H - 16 * mm, card.name)
    canvas.setFont(font, 9)
    canvas.drawString(x + 5 * mm, y + CARD_H - 24 * mm, f"证件 {card.id_masked}")
    if card.community:
        community = card.community
        canvas.setFont(font, _fit(canvas, community, font, 9, text_width))
        canvas.drawString(x + 5 * mm, y + CARD_H - 30 * mm, community)
    canvas.setFont("Courier-Bold", 10)
    code = card.resident_code
    canvas.drawString(x + 5 * mm, y + 14 * mm, f"{code[:7]} {code[7:]}")
    canvas.setFont(font, 7.5)
    canvas.drawString(x + 5 * mm, y + 8 * mm, "核酸码 采样时出示")


def render_code_sheets(
    cards: Sequence[CodeCard], *, district: str, community: str | None, printed_at: datetime
) -> bytes:
    """The cards, eight to an A4 page, each page headed with where it is for."""
    font = ensure_cjk_font()
    buffer = io.BytesIO()
    canvas = Canvas(buffer, pagesize=A4, pageCompression=1)
    canvas.setTitle(f"code sheets, {district}")
    per_page = COLUMNS * ROWS
    pages = max(1, -(-len(cards) // per_page))
    heading = f"核酸码卡片 {district}" + (f" · {community}" if community else "")
    for page in range(pages):
        canvas.setFont(font, 11)
        canvas.drawString(MARGIN_X, A4[1] - 12 * mm, heading)
        canvas.setFont(font, 8)
        canvas.drawRightString(
            A4[0] - MARGIN_X,
            A4[1] - 12 * mm,
            f"第 {page + 1}/{pages} 页  共 {len(cards)} 人  打印于 {printed_at:%Y-%m-%d %H:%M}",
        )
        for slot, card in enumerate(cards[page * per_page : (page + 1) * per_page]):
            column, row = slot % COLUMNS, slot // COLUMNS
            x = MARGIN_X + column * CARD_W
            y = A4[1] - MARGIN_TOP - (row + 1) * CARD_H
            _card(canvas, card, x, y, font)
        canvas.setFont(font, 7.5)
        canvas.drawString(
            MARGIN_X, 8 * mm, "含个人信息:沿虚线剪开,交给本人;剩余卡片交回社区,不要外传。"
        )
        canvas.showPage()
    canvas.save()
    return buffer.getvalue()
