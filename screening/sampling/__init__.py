"""Sampling: swabs into tubes at the sampling point, online and offline (sync)."""
