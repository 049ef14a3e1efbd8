"""Residents: registration, personal codes, and their own result query."""
