"""Resident codes as QR codes (segno): SVG for phones and other clients."""

from __future__ import annotations

import io

import segno


def qr_svg(code: str) -> bytes:
    """The code alone, error correction Q (a cracked screen still scans), a quiet zone
    of four modules, scalable (no fixed size: the page makes it as large as it can)."""
    qr = segno.make_qr(code, error="q", boost_error=False)
    out = io.BytesIO()
    qr.save(out, kind="svg", scale=10, border=4, xmldecl=False, svgns=True, omitsize=True)
    return out.getvalue()
