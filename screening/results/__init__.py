"""Lab results: uploads of instrument files, result versions per tube, plate controls."""
