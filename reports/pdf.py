"""What every PDF of ours shares: the CJK font (reportlab's built-in CID font
STSong-Light: Adobe's Song, no font file shipped; readers supply the glyphs, and text
extracts back as Unicode) and an A4 story document."""

from __future__ import annotations

from datetime import datetime, tzinfo
from typing import IO

from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.platypus import SimpleDocTemplate

CJK_FONT = "STSong-Light"


def ensure_cjk_font() -> str:
    if CJK_FONT not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(UnicodeCIDFont(CJK_FONT))
    return CJK_FONT


def a4_document(out: IO[bytes], *, title: str, margin_mm: float = 15) -> SimpleDocTemplate:
    """An A4 document with even margins; ``doc.width`` is the text width."""
    margin = margin_mm * mm
    return SimpleDocTemplate(
        out,
        pagesize=A4,
        leftMargin=margin,
        rightMargin=margin,
        topMargin=margin,
        bottomMargin=margin,
        title=title,
    )


def zone_label(zone: tzinfo, at: datetime) -> str:
    """How a sheet names its zone: the IANA name and the offset, e.g.
    ``Asia/Shanghai UTC+08:00`` (a squad reads it at a glance, a reviewer can check it)."""
    offset = at.astimezone(zone).strftime("%z")
    return f"{zone} UTC{offset[:3]}:{offset[3:]}"


def local_time(at: datetime, zone: tzinfo, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """``at`` (an aware time) as a person in ``zone`` reads it, with the zone named."""
    return f"{at.astimezone(zone):{fmt}} ({zone_label(zone, at)})"
