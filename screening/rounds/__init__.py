"""Rounds: planning, barcode ranges."""
