"""Telling a lab file's format from its first bytes (and name), for uploads that name
none. Each format has a signature no other one shares:

* ``slan-96p``: an xlsx (zip) file, or text naming ``SLAN`` or the ``反应孔`` column;
* ``quantstudio``: ``* Key = Value`` / ``# Key: Value`` header lines, or a
  ``[Results]`` / ``[Target Call]`` section line;
* ``biorad-cfx``: a header row with ``Well``, ``Fluor``/``Content`` and ``Cq``, or the
  CFX file name ``... Quantification Cq Results.csv``;
* ``lis-csv``: a first row naming ``plate``, ``well`` and ``sample``.
"""

from __future__ import annotations

import csv

from lab_io.formats.common import column_index

XLSX_MAGIC = b"PK\x03\x04"


def _decode(head: bytes) -> str:
    head = head.removeprefix(b"\xef\xbb\xbf")
    for encoding in ("utf-8", "gb18030"):
        try:
            return head.decode(encoding)
        except UnicodeDecodeError as exc:
            # the head may end inside a character: keep what decodes
            if exc.start >= len(head) - 4:
                return head[: exc.start].decode(encoding)
    return head.decode("latin-1")


def detect_format(head: bytes, filename: str | None = None) -> str | None:
    """The format of a file starting with ``head``; None when it is none of ours."""
    if head.startswith(XLSX_MAGIC):
        return "slan-96p"
    text = _decode(head)
    lines = [line for line in text.splitlines()[:60] if line.strip()]
    if "SLAN" in text.upper() or "反应孔" in text:
        return "slan-96p"
    for line in lines:
        bare = line.strip().strip('"')
        if (bare.startswith("*") and "=" in bare) or (bare.startswith("#") and ":" in bare):
            return "quantstudio"
        if bare.strip(",").strip('"') in ("[Results]", "[Target Call]"):
            return "quantstudio"
    if filename and "quantification cq results" in filename.lower():
        return "biorad-cfx"
    for row in csv.reader(lines[:30]):
        names = column_index(row)
        if "well" in names and "ct" in names and ("fluor" in names or "content" in names):
            return "biorad-cfx"
        if {"plate", "well", "sample"} <= names.keys():
            return "lis-csv"
    return None
