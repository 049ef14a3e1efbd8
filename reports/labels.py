"""Tube label sheets: A4 pages of Code 128 labels, 3 columns x 10 rows, 10 mm margins.

Each label holds the bars, the human-readable barcode under them and a small caption
(round and sampling point, may be Chinese: set in reportlab's built-in CID font
STSong-Light, so no font file is shipped). python-barcode encodes each code (code set
choice, check symbol, stop pattern) into its modules; the modules are drawn here as
filled rectangles straight into the page, so the bars stay vectors at any printer
resolution and no intermediate SVG or image is made.

A sheet is bounded by its caller (``MAX_LABELS`` here, a setting in the service):
a 100,000-label range is printed in parts, never as one 3,334-page document.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from functools import lru_cache

from barcode.codex import Code128
from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.pdfgen.canvas import Canvas

from reports.pdf import CJK_FONT, ensure_cjk_font

COLUMNS, ROWS = 3, 10
PER_PAGE = COLUMNS * ROWS
MARGIN = 10 * mm
MODULE = 0.30 * mm  # narrowest bar: 0.3 mm reads well on 203 dpi label printers
QUIET_MODULES = 10  # Code 128 wants 10 modules of white on each side
MAX_LABELS = 10_000


@lru_cache(maxsize=1024)
def code128_modules(code: str) -> str:
    """The code as Code 128 modules, ``1`` a bar and ``0`` a space, quiet zones excluded."""
    modules: str = Code128(code, writer=None).build()[0]
    return modules


def bar_runs(modules: str) -> list[tuple[int, int]]:
    """(start, width) of each bar, in modules."""
    runs: list[tuple[int, int]] = []
    start = None
    for i, module in enumerate(modules + "0"):
        if module == "1" and start is None:
            start = i
        elif module == "0" and start is not None:
            runs.append((start, i - start))
            start = None
    return runs


def _draw_bars(canvas: Canvas, code: str, x: float, y: float, height: float) -> None:
    """Draw ``code``'s bars with their left edge at ``x``."""
    modules = code128_modules(code)
    path = canvas.beginPath()
    for start, width in bar_runs(modules):
        path.rect(x + start * MODULE, y, width * MODULE, height)
    canvas.drawPath(path, stroke=0, fill=1)


def render_label_sheet(barcodes: Sequence[str], *, caption: str = "") -> bytes:
    if not barcodes:
        raise ValueError("no barcodes to print")
    if len(barcodes) > MAX_LABELS:
        raise ValueError(f"at most {MAX_LABELS} labels a sheet, not {len(barcodes)}")
    ensure_cjk_font()
    buffer = io.BytesIO()
    canvas = Canvas(buffer, pagesize=A4)
    canvas.setTitle("tube labels")
    page_w, page_h = A4
    cell_w = (page_w - 2 * MARGIN) / COLUMNS
    cell_h = (page_h - 2 * MARGIN) / ROWS
    bar_h = cell_h * 0.45
    for index, code in enumerate(barcodes):
        if index and index % PER_PAGE == 0:
            canvas.showPage()
        slot = index % PER_PAGE
        col, row = slot % COLUMNS, slot // COLUMNS
        x = MARGIN + col * cell_w
        top = page_h - MARGIN - row * cell_h
        width = (len(code128_modules(code)) + 2 * QUIET_MODULES) * MODULE
        left = x + (cell_w - width) / 2 + QUIET_MODULES * MODULE
        _draw_bars(canvas, code, left, top - 4 * mm - bar_h, bar_h)
        canvas.setFont("Helvetica", 9)
        canvas.drawCentredString(x + cell_w / 2, top - bar_h - 8 * mm, code)
        if caption:
            canvas.setFont(CJK_FONT, 6.5)
            canvas.drawCentredString(x + cell_w / 2, top - bar_h - 11.5 * mm, caption)
    canvas.showPage()
    canvas.save()
    return buffer.getvalue()
