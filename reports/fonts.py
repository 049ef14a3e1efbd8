"""The one CJK font every report uses: reportlab's built-in CID font STSong-Light
(Adobe's Song, no font file shipped; readers supply the glyphs, and text extracts back
as Unicode)."""

from __future__ import annotations

from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont

CJK_FONT = "STSong-Light"


def ensure_cjk_font() -> str:
    if CJK_FONT not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(UnicodeCIDFont(CJK_FONT))
    return CJK_FONT
