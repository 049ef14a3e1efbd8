"""Tubes and pools: barcodes, capacity, sealing, the tube lifecycle. Pure rules, no I/O."""
