"""Printable output: label sheets, round reports. Data in, bytes out."""
