"""Tube label sheets: A4 pages of Code 128 labels, 3 columns x 10 rows, 10 mm margins.

Each label holds the bars, the human-readable barcode under them and a small caption
(round and sampling point, may be Chinese: set in reportlab's built-in CID font
STSong-Light, so no font file is shipped). reportlab's own Code 128 widget draws the
bars as vectors straight into the PDF, which python-barcode would only do through an
intermediate SVG or image.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

from reportlab.graphics.barcode.code128 import Code128
from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.pdfgen.canvas import Canvas

from reports.pdf import CJK_FONT, ensure_cjk_font

COLUMNS, ROWS = 3, 10
MARGIN = 10 * mm


def render_label_sheet(barcodes: Sequence[str], *, caption: str = "") -> bytes:
    if not barcodes:
        raise ValueError("no barcodes to print")
    ensure_cjk_font()
    buffer = io.BytesIO()
    canvas = Canvas(buffer, pagesize=A4)
    canvas.setTitle("tube labels")
    page_w, page_h = A4
    cell_w = (page_w - 2 * MARGIN) / COLUMNS
    cell_h = (page_h - 2 * MARGIN) / ROWS
    per_page = COLUMNS * ROWS
    for index, code in enumerate(barcodes):
        if index and index % per_page == 0:
            canvas.showPage()
        slot = index % per_page
        col, row = slot % COLUMNS, slot // COLUMNS
        x = MARGIN + col * cell_w
        top = page_h - MARGIN - row * cell_h
        bars = Code128(
            code, barHeight=cell_h * 0.45, barWidth=0.28 * mm, humanReadable=False, quiet=False
        )
        bars.drawOn(canvas, x + (cell_w - bars.width) / 2, top - 4 * mm - cell_h * 0.45)
        canvas.setFont("Helvetica", 9)
        canvas.drawCentredString(x + cell_w / 2, top - cell_h * 0.45 - 8 * mm, code)
        if caption:
            canvas.setFont(CJK_FONT, 6.5)
            canvas.drawCentredString(x + cell_w / 2, top - cell_h * 0.45 - 11.5 * mm, caption)
    canvas.showPage()
    canvas.save()
    return buffer.getvalue()
